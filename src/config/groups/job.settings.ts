import { IsBoolean, IsInt, Max, Min } from 'class-validator';
import { Env } from '../env.decorator';

/** How many jobs run at once, and how long they may take. */
export class JobSettings {
  @Env('MAX_CONCURRENT_JOBS', {
    allowed: '1-64',
    doc: 'Jobs running at once; the rest wait in FIFO order.',
  })
  @IsInt()
  @Min(1)
  @Max(64)
  maxConcurrent = 2;

  @Env('JOB_NICE', {
    allowed: '0-19',
    doc:
      "How far below the daemon's own CPU priority a job's data work runs (nice): its qemu-img, its decompressor " +
      "and its download thread. The daemon's thread that answers status, SSE and /metrics stays at the daemon's " +
      'priority, so it is scheduled first when conversions keep the cores busy; with the cores free, the work runs ' +
      'at full speed either way. 0: jobs compete with the API (and with the VMs) as equals. Work no job waits for ' +
      '(expanded copies, verifying a golden base) runs at nice 19.',
  })
  @IsInt()
  @Min(0)
  @Max(19)
  nice = 10;

  @Env('JOB_TIMEOUT', {
    allowed: 'a positive integer',
    doc: 'Seconds a job may run, counted from when it starts running; then it fails as timed out.',
  })
  @IsInt()
  @Min(1)
  timeoutSeconds = 3600;

  @Env('SHUTDOWN_GRACE', {
    allowed: 'a non-negative integer',
    doc: 'Seconds running jobs may take to finish after SIGTERM; then they are cancelled and rolled back. Pending jobs stay pending and run after the next start.',
  })
  @IsInt()
  @Min(0)
  shutdownGraceSeconds = 30;

  @Env('RESUME_INTERRUPTED', {
    allowed: 'true, false',
    doc: 'After a crash (kill -9, power loss), jobs that were running go on where they stopped: the partial download in CACHE_DIR/tmp is re-hashed and resumed with a range request guarded by the ETag, then the image is converted again. false: they end failed (`interrupted`). Pending jobs run after any restart either way.',
  })
  @IsBoolean()
  resumeInterrupted = true;

  @Env('RESUME_MAX', {
    allowed: 'a non-negative integer',
    doc: 'Times a job may be interrupted by a crash and resumed; interrupted once more, it fails (`interrupted`, naming this limit), so a crash loop cannot spin forever.',
  })
  @IsInt()
  @Min(0)
  resumeMax = 3;
}
