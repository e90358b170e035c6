import { IsInt, Max, Min } from 'class-validator';
import { Env } from '../env.decorator';

/** What /readyz checks. */
export class ReadySettings {
  @Env('READY_MIN_FREE_BYTES', {
    allowed: 'a byte count, e.g. 1073741824 or 1G',
    doc: 'Free bytes CACHE_DIR and VOLUME_DIR (file backend) must each have; with less, /readyz answers 503 naming the directory (K/M/G/T suffixes allowed).',
  })
  @IsInt()
  @Min(0)
  minFreeBytes = 1024 ** 3;

  @Env('READY_S3_CHECK_SECONDS', {
    allowed: '1-300',
    doc: 'Seconds between background checks that MINIO_ENDPOINT answers (2 s timeout each). /readyz reports the latest result, so a slow S3 never stalls a probe.',
  })
  @IsInt()
  @Min(1)
  @Max(300)
  s3CheckSeconds = 10;
}
