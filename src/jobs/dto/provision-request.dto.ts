import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  registerDecorator,
  ValidationOptions,
} from 'class-validator';
import { IMAGE_TYPES } from '../../convert/image-format';
import { volumeNameProblem } from '../../volumes/volume-name';
import { imageUrlProblem } from '../../storage/image-url';
import type { PrefetchRequest, ProvisionRequest } from '../job.model';

/** Schemes image URLs may use (s3:// needs MINIO_ENDPOINT; the service checks that). */
export const SUPPORTED_SCHEMES = ['http', 'https', 's3'] as const;
/** Hard upper bound for volume_size_gb in the schema; MAX_VOLUME_SIZE_GB may lower it. */
export const VOLUME_SIZE_GB_LIMIT = 1024 * 1024;

/** Builds a class-validator decorator from a pure "what is wrong with it" function. */
function Satisfies(problem: (value: string) => string | undefined, options?: ValidationOptions) {
  return (target: object, propertyName: string) =>
    registerDecorator({
      name: `satisfies_${propertyName}`,
      target: target.constructor,
      propertyName,
      options,
      validator: {
        validate: (value: unknown) => typeof value === 'string' && problem(value) === undefined,
        defaultMessage: (args) =>
          typeof args?.value === 'string'
            ? `${propertyName} ${problem(args.value)}`
            : `${propertyName} must be a string`,
      },
    });
}

const CHECKSUM = /^sha256:[0-9a-fA-F]{64}$/;

/** What a prefetch names: an image and, optionally, its digest. */
export class PrefetchRequestDto implements PrefetchRequest {
  @ApiProperty({
    example: 's3://images/ubuntu-24.04.qcow2',
    description: 'http(s)://..., s3://bucket/key, or http(s)://<MINIO_ENDPOINT>/bucket/key',
    maxLength: 4096,
  })
  @IsString()
  @MaxLength(4096)
  @Satisfies((v) => imageUrlProblem(v, SUPPORTED_SCHEMES))
  image_url!: string;

  @ApiPropertyOptional({
    example: 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    description: 'Expected digest; else a <image>.sha256 sidecar next to the image is used when present',
  })
  @IsOptional()
  @IsString()
  @Matches(CHECKSUM, { message: 'checksum must look like sha256:<64 hex digits>' })
  checksum?: string;

  @ApiPropertyOptional({
    example: 'deploy-4711',
    description: 'Your tracking id: stored, echoed and logged; never used to deduplicate',
    maxLength: 256,
  })
  @IsOptional()
  @IsString()
  @MaxLength(256)
  @Matches(/^[\x20-\x7e]*$/, { message: 'correlation_id must be printable ASCII' })
  correlation_id?: string;
}

export class ProvisionRequestDto extends PrefetchRequestDto implements ProvisionRequest {
  @ApiProperty({
    example: 'vm-web-1',
    description: "LVM name rules: letters, digits, + _ . -; not starting with '-'; at most 127 characters",
    maxLength: 127,
  })
  @IsString()
  @Satisfies(volumeNameProblem)
  volume_name!: string;

  @ApiProperty({ example: 50, description: 'Size of the volume in GiB (2^30 bytes)', minimum: 1 })
  // Decorators run bottom-up: the type check first, so "10" is reported as not an integer.
  @Max(VOLUME_SIZE_GB_LIMIT, { message: `volume_size_gb must not exceed ${VOLUME_SIZE_GB_LIMIT}` })
  @Min(1, { message: 'volume_size_gb must be a positive integer (GiB)' })
  @IsInt({ message: 'volume_size_gb must be a positive integer (GiB)' })
  volume_size_gb!: number;

  @ApiProperty({ enum: IMAGE_TYPES, example: 'qcow2', description: 'Format of the image as published' })
  @IsIn(IMAGE_TYPES, { message: `image_type must be one of: ${IMAGE_TYPES.join(', ')}` })
  image_type!: string;
}

export class ProvisionAcceptedDto {
  @ApiProperty({ format: 'uuid' })
  job_id!: string;

  @ApiProperty({ enum: ['pending', 'running', 'completed', 'failed', 'cancelled'] })
  status!: string;

  @ApiProperty({ example: '/api/v1/status/8f9c...' })
  status_url!: string;
}
