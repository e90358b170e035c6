import { messageOf } from '../common/errors';
import type { Logger } from '@nestjs/common';
import { jobLogFields } from './job-log';
import type { Job } from './job.model';
import type { JobRepository } from './job.repository';

/** How often states the database refused are offered to it again. */
const RETRY_INTERVAL_MS = 2000;

/**
 * Writes job states to the database. A database that cannot be written must not kill the job or
 * the daemon: the state is kept in memory, served from there (`unsaved`), and written once the
 * database works again.
 */
export class JobStateWriter {
  /** Job states the database refused (read-only, disk full); retried until it takes them. */
  private readonly pending = new Map<string, Job>();
  private retryTimer?: NodeJS.Timeout;

  constructor(
    private readonly repository: JobRepository,
    private readonly logger: Logger,
  ) {}

  /** The latest state of a job the database has not taken yet. */
  unsaved(jobId: string): Job | undefined {
    return this.pending.get(jobId);
  }

  /** `durable: false`: on disk with the next durable write or flush() (see JobRepository.save). */
  write(job: Job, durable = true): void {
    try {
      this.repository.save(job, durable);
      this.pending.delete(job.id);
    } catch (error) {
      if (!this.pending.has(job.id)) {
        this.logger.error({
          ...jobLogFields(job),
          error: messageOf(error),
          msg: 'cannot write job state; keeping it in memory and retrying',
        });
      }
      this.pending.set(job.id, job);
      this.retryTimer ??= setInterval(() => this.retry(), RETRY_INTERVAL_MS).unref();
    }
  }

  /**
   * Writes a state and resolves once it is on disk (a job's final state, before anyone is told).
   * The fsync runs in the thread pool: on the event loop it took 0.66-0.93 s after a 1 GiB
   * download (ext4 made it wait for the download's data), and no status or SSE answer went out.
   */
  async writeDurably(job: Job): Promise<void> {
    this.write(job, false);
    await this.flush();
  }

  /** Writes a state and starts making it durable in the thread pool, without waiting for that. */
  writeAndFlush(job: Job): void {
    this.write(job, false);
    void this.flush();
  }

  /** Makes the states written so far durable, off the event loop; a failure is logged, not thrown. */
  async flush(): Promise<void> {
    try {
      await this.repository.flush();
    } catch (error) {
      this.logger.error({ error: messageOf(error), msg: 'cannot fsync the job database' });
    }
  }

  private retry(): void {
    for (const job of [...this.pending.values()]) {
      try {
        this.repository.save(job);
        this.pending.delete(job.id);
      } catch {
        return; // still failing: try again later
      }
    }
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.logger.log('the job database is writable again; saved the job states kept in memory');
  }
}
