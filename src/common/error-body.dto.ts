import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/**
 * The one error body of every endpoint. `error`, `message` and `code` are the original Go service's
 * ErrorResponse, with its types (`code` is the HTTP status, an integer); the rest is ours.
 */
export class ErrorBodyDto {
  @ApiProperty({
    example: 'validation failed',
    description: 'The kind of error in words (error_code spelt out)',
  })
  error!: string;

  @ApiProperty({
    example: "volume_name must not start with '-'",
    description: 'What went wrong, for a human',
  })
  message!: string;

  @ApiProperty({ type: 'integer', example: 400, description: 'The HTTP status, as in the original service' })
  code!: number;

  @ApiProperty({ example: 'validation_failed', description: 'Stable machine-readable code: branch on this' })
  error_code!: string;

  @ApiProperty({ example: '6b0c2c8e-...', description: 'Also in the X-Request-ID header and the logs' })
  request_id!: string;

  @ApiPropertyOptional({ description: 'Structured facts: per-field messages, conflicting job, sizes...' })
  details?: unknown;
}
