import { IsInt, Matches, Max, Min } from 'class-validator';
import { Env } from '../env.decorator';

/**
 * Retries of an image transfer. The variables keep their MINIO_ names from the original service,
 * but the downloader applies them to every source.
 */
export class RetrySettings {
  @Env('MINIO_RETRY_ATTEMPTS', {
    allowed: '1-20',
    doc: 'Tries per transfer (1 = no retry). Only transient failures (network errors, 5xx, throttling) are retried; a retry resumes where the last try stopped.',
  })
  @IsInt()
  @Min(1)
  @Max(20)
  attempts = 4;

  @Env('MINIO_RETRY_BACKOFF_MS', {
    allowed: 'a number or a comma-separated list of numbers',
    doc: 'Milliseconds to wait before each retry: a comma list (one per retry, the last repeats) or one number that doubles each time. Jitter of up to 20 % is added.',
  })
  @Matches(/^\d+(,\d+)*$/, { message: 'must be milliseconds: one number or a comma-separated list' })
  backoffMs = '1000,2000,4000';
}
