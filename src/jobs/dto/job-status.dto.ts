import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { isProvision, JOB_STATUSES, stageThroughput, type Job } from '../job.model';
import { STAGES } from '../pipeline/stages';

export class ProgressDto {
  @ApiProperty({ enum: STAGES, nullable: true, type: String })
  stage!: string | null;

  @ApiProperty({ description: 'Overall percentage, 0-100; never goes down', example: 42.5 })
  percent!: number;

  @ApiProperty({ description: 'Bytes done in the current stage (downloaded, or converted)' })
  bytes_processed!: number;

  @ApiProperty({
    description: 'Bytes the current stage will process, when known',
    nullable: true,
    type: Number,
  })
  bytes_total!: number | null;

  @ApiProperty({
    description: 'Average throughput of the current stage so far (bytes/s), while it runs',
    nullable: true,
    type: Number,
  })
  bytes_per_second!: number | null;

  @ApiProperty({
    description:
      'Stage `streaming` only (the image is written while it downloads): bytes of the virtual size ' +
      'qemu-img reports done (its -p progress counts a request when it is issued, so it runs up to 16 MiB ' +
      'ahead of what is written); bytes_processed/bytes_total are then the download. null in every other stage',
    nullable: true,
    type: Number,
  })
  write_bytes_processed!: number | null;

  @ApiProperty({
    description:
      "Stage `streaming` only: the image's virtual size, the bytes the write will cover. null otherwise",
    nullable: true,
    type: Number,
  })
  write_bytes_total!: number | null;
}

export class JobStatusDto {
  @ApiProperty({ format: 'uuid' })
  job_id!: string;

  @ApiProperty({ enum: ['provision', 'prefetch'], description: 'prefetch jobs only fill the cache' })
  kind!: string;

  @ApiProperty({ enum: JOB_STATUSES })
  status!: string;

  @ApiProperty({ type: ProgressDto })
  progress!: ProgressDto;

  @ApiProperty({ example: 's3://images/ubuntu-24.04.qcow2' })
  image_url!: string;

  @ApiProperty({ nullable: true, type: String, description: 'null for prefetch jobs' })
  volume_name!: string | null;

  @ApiProperty({ nullable: true, type: Number, description: 'null for prefetch jobs' })
  volume_size_gb!: number | null;

  @ApiProperty({ nullable: true, type: String, description: 'null for prefetch jobs' })
  image_type!: string | null;

  @ApiProperty({
    description:
      "The request's correlation_id; the job id when it had none, as the original service answered",
  })
  correlation_id!: string;

  @ApiProperty({ description: 'The image came from the local cache' })
  cache_hit!: boolean;

  @ApiProperty({ nullable: true, type: String, description: 'Local file the image was written from' })
  image_path!: string | null;

  @ApiProperty({
    nullable: true,
    type: String,
    description: 'sha256 of the image as published (computed in flight)',
  })
  image_sha256!: string | null;

  @ApiProperty({
    description:
      'true when image_sha256 matched an expected digest (request checksum or .sha256 sidecar); false means the image was unverified',
  })
  checksum_verified!: boolean;

  @ApiProperty({ nullable: true, type: String, description: 'Path of the target volume' })
  volume_path!: string | null;

  @ApiProperty({ description: 'The job reused a volume that existed before it' })
  volume_reused!: boolean;

  @ApiProperty({
    description: 'The volume is a copy-on-write clone of a golden base (no byte of the image was rewritten)',
  })
  clone!: boolean;

  @ApiProperty({
    nullable: true,
    type: String,
    description: 'The golden base it was cloned from (VOLUME_DIR/.lvp-bases/<sha256>-<virtual size>.raw)',
  })
  clone_base!: string | null;

  @ApiProperty({
    description:
      'Times a crash interrupted the job and a restart resumed it (RESUME_INTERRUPTED, at most RESUME_MAX)',
  })
  resumed!: number;

  @ApiProperty({
    nullable: true,
    type: Number,
    description:
      'Bytes of the download kept from before the last restart (the rest was fetched with a range request); 0 when it started over, null when nothing was resumed',
  })
  resumed_from_bytes!: number | null;

  @ApiProperty({ nullable: true, type: String })
  error!: string | null;

  @ApiProperty({ nullable: true, type: String, description: 'Machine-readable reason of a failure' })
  error_code!: string | null;

  @ApiPropertyOptional({ description: 'Place in the queue (1 = next) while pending' })
  queue_position?: number;

  @ApiProperty()
  created_at!: string;

  @ApiProperty()
  updated_at!: string;

  @ApiProperty({ nullable: true, type: String })
  started_at!: string | null;

  @ApiProperty({ nullable: true, type: String })
  finished_at!: string | null;

  static from(job: Job, queuePosition?: number): JobStatusDto {
    const provision = isProvision(job.request) ? job.request : undefined;
    return {
      job_id: job.id,
      kind: job.kind,
      status: job.status,
      progress: {
        stage: job.stage,
        percent: job.percent,
        bytes_processed: job.bytesProcessed,
        bytes_total: job.bytesTotal,
        bytes_per_second: job.status === 'running' ? stageThroughput(job, Date.now()) : null,
        write_bytes_processed: job.stage === 'streaming' ? (job.writeBytesProcessed ?? null) : null,
        write_bytes_total: job.stage === 'streaming' ? (job.writeBytesTotal ?? null) : null,
      },
      image_url: job.request.image_url,
      volume_name: provision?.volume_name ?? null,
      volume_size_gb: provision?.volume_size_gb ?? null,
      image_type: provision?.image_type ?? null,
      // The original service always answered with one (the job id); its clients may rely on it.
      correlation_id: job.request.correlation_id ?? job.id,
      cache_hit: job.cacheHit,
      image_path: job.imagePath,
      image_sha256: job.imageSha256,
      checksum_verified: job.checksumVerified,
      volume_path: job.volumePath,
      volume_reused: job.reusedVolume,
      clone: job.cloneBase !== null,
      clone_base: job.cloneBase,
      resumed: job.resumed,
      resumed_from_bytes: job.resumedFromBytes,
      error: job.error,
      error_code: job.errorCode,
      ...(queuePosition === undefined ? {} : { queue_position: queuePosition }),
      created_at: job.createdAt,
      updated_at: job.updatedAt,
      started_at: job.startedAt,
      finished_at: job.finishedAt,
    };
  }
}
