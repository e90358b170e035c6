import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/** The one error body of every endpoint. */
export class ErrorBodyDto {
  @ApiProperty({ example: 'validation_failed', description: 'Stable machine-readable code' })
  code!: string;

  @ApiProperty({
    example: "volume_name must not start with '-'",
    description: 'What went wrong, for a human',
  })
  message!: string;

  @ApiProperty({ example: '6b0c2c8e-...', description: 'Also in the X-Request-ID header and the logs' })
  request_id!: string;

  @ApiPropertyOptional({ description: 'Structured facts: per-field messages, conflicting job, sizes...' })
  details?: unknown;
}
