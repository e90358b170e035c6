import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { Observable, Subject, Subscription } from 'rxjs';
import { DomainError, JobCancelledError, JobFailure, JobTimeoutError } from '../common/errors';
import { Settings } from '../config/settings';
import type { JobEvent } from './job-event';
import { jobLogFields, withoutUrlQueries } from './job-log';
import { JobRepository } from './job.repository';
import { ChangeKind, applyEvent } from './job-state';
import { Job, JobStatus } from './job.model';
import type { JobContext } from './pipeline/job-context';
import type { JobRequest } from './job.model';
import { ProvisionPipeline } from './pipeline/provision.pipeline';

export interface JobUpdate {
  job: Job;
  kind: ChangeKind;
}

interface RunningJob {
  job: Job;
  ctx: JobContext<JobRequest>;
  subscription?: Subscription;
  tracked: Promise<unknown>[];
  lastPersist: number;
  lastPublish: number;
  /** Set once the job is ending, with the outcome to record; later stop requests only wait. */
  ending?: Promise<Job>;
}

/** Progress is written to SQLite at most this often per job (stage and status changes at once). */
const PERSIST_INTERVAL_MS = 1000;
/** Progress is pushed to watchers at most this often per job. */
const PUBLISH_INTERVAL_MS = 200;

/**
 * Runs jobs: a FIFO queue, at most MAX_CONCURRENT_JOBS at once, each job's pipeline subscribed,
 * its events folded into the job, persisted (throttled) and published. Ending a job (success,
 * failure, cancel, timeout, shutdown) goes through finish(), the one place rollback runs.
 */
@Injectable()
export class JobRunner implements BeforeApplicationShutdown {
  private readonly logger = new Logger(JobRunner.name);
  private readonly queue: string[] = [];
  private readonly running = new Map<string, RunningJob>();
  private readonly updates$ = new Subject<JobUpdate>();
  /** Job states the database refused (read-only, disk full); retried until it takes them. */
  private readonly unsaved = new Map<string, Job>();
  private retryTimer?: NodeJS.Timeout;
  private accepting = true;

  constructor(
    private readonly settings: Settings,
    private readonly repository: JobRepository,
    private readonly pipeline: ProvisionPipeline,
  ) {}

  /** Every change of every job, as it happens. */
  get updates(): Observable<JobUpdate> {
    return this.updates$.asObservable();
  }

  get runningCount(): number {
    return this.running.size;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /** 1-based place in the queue of a pending job, or undefined. */
  queuePosition(jobId: string): number | undefined {
    const index = this.queue.indexOf(jobId);
    return index < 0 ? undefined : index + 1;
  }

  /** The live state of a running job (fresher than the throttled database row). */
  live(jobId: string): Job | undefined {
    return this.running.get(jobId)?.job ?? this.unsaved.get(jobId);
  }

  /**
   * Writes a job's state. A database that cannot be written must not kill the job or the daemon:
   * the state is kept in memory, served from there, and written once the database works again.
   */
  private persist(job: Job): void {
    try {
      this.repository.save(job);
      this.unsaved.delete(job.id);
    } catch (error) {
      if (!this.unsaved.has(job.id)) {
        this.logger.error({
          ...jobLogFields(job),
          error: (error as Error).message,
          msg: 'cannot write job state; keeping it in memory and retrying',
        });
      }
      this.unsaved.set(job.id, job);
      this.retryTimer ??= setInterval(() => this.retryUnsaved(), 2000).unref();
    }
  }

  private retryUnsaved(): void {
    for (const job of [...this.unsaved.values()]) {
      try {
        this.repository.save(job);
        this.unsaved.delete(job.id);
      } catch {
        return; // still failing: try again later
      }
    }
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.logger.log('the job database is writable again; saved the job states kept in memory');
  }

  enqueue(job: Job): void {
    this.queue.push(job.id);
    this.publish(job, 'status');
    this.pump();
  }

  /** Cancels a pending or running job and resolves once its rollback is done. */
  async cancel(jobId: string): Promise<Job | undefined> {
    const index = this.queue.indexOf(jobId);
    if (index >= 0) {
      this.queue.splice(index, 1);
      const job = this.repository.get(jobId)!;
      const ended = this.endState(job, 'cancelled', new JobCancelledError());
      this.persist(ended);
      this.publish(ended, 'status');
      this.logger.log({ ...jobLogFields(ended), status: ended.status, stage: null, msg: 'job cancelled' });
      return ended;
    }
    const entry = this.running.get(jobId);
    if (!entry) return undefined;
    return this.stop(entry, 'cancelled', new JobCancelledError());
  }

  /**
   * SIGTERM: no job starts any more; running jobs get SHUTDOWN_GRACE seconds to finish, then are
   * cancelled and rolled back. Pending jobs stay pending in the database; a clean-shutdown mark
   * tells the next start to run them.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.accepting = false;
    const running = [...this.running.values()];
    if (running.length > 0) {
      this.logger.log({
        running: running.length,
        grace_seconds: this.settings.jobs.shutdownGraceSeconds,
        msg: 'shutting down: waiting for running jobs',
      });
      const finished = Promise.allSettled(running.map((entry) => this.whenEnded(entry)));
      const graceOver = new Promise<'grace-over'>((resolve) =>
        setTimeout(() => resolve('grace-over'), this.settings.jobs.shutdownGraceSeconds * 1000).unref(),
      );
      if ((await Promise.race([finished, graceOver])) === 'grace-over') {
        await Promise.allSettled(
          [...this.running.values()].map((entry) =>
            this.stop(
              entry,
              'cancelled',
              new JobFailure(
                'shutdown',
                `cancelled by daemon shutdown: not finished within SHUTDOWN_GRACE=${this.settings.jobs.shutdownGraceSeconds} s`,
              ),
            ),
          ),
        );
      }
    }
    this.repository.setState('clean_shutdown', new Date().toISOString());
    this.logger.log({
      pending: this.queue.length,
      msg: 'stopped cleanly; pending jobs will run after the next start',
    });
    this.updates$.complete();
  }

  /** Resolves when a running job has ended, however it ends. */
  private whenEnded(entry: RunningJob): Promise<unknown> {
    return new Promise((resolve) => {
      const check = () => (this.running.has(entry.job.id) ? setTimeout(check, 50) : resolve(undefined));
      check();
    });
  }

  private pump(): void {
    while (this.accepting && this.running.size < this.settings.jobs.maxConcurrent && this.queue.length > 0) {
      const jobId = this.queue.shift()!;
      this.start(jobId);
    }
  }

  private start(jobId: string): void {
    const stored = this.repository.get(jobId)!;
    const now = new Date().toISOString();
    const job: Job = { ...stored, status: 'running', startedAt: now, updatedAt: now };
    const entry: RunningJob = {
      job,
      tracked: [],
      lastPersist: 0,
      lastPublish: 0,
      ctx: {
        id: job.id,
        request: job.request,
        createdVolume: false,
        track: (settled) => entry.tracked.push(settled),
      },
    };
    this.running.set(jobId, entry);
    this.persist(job);
    this.publish(job, 'status');
    this.logger.log({
      ...jobLogFields(job),
      waited_seconds: seconds(job.createdAt, now),
      msg: 'job started',
    });

    const timeout = setTimeout(() => {
      void this.stop(entry, 'failed', new JobTimeoutError(this.settings.jobs.timeoutSeconds));
    }, this.settings.jobs.timeoutSeconds * 1000);
    timeout.unref();

    entry.subscription = this.pipeline.run(entry.ctx).subscribe({
      next: (event) => this.onEvent(entry, event),
      error: (error) => {
        clearTimeout(timeout);
        void this.finish(entry, 'failed', error);
      },
      complete: () => {
        clearTimeout(timeout);
        void this.finish(entry, 'completed');
      },
    });
    entry.subscription.add(() => clearTimeout(timeout));
  }

  private onEvent(entry: RunningJob, event: JobEvent): void {
    if (event.type === 'log') {
      this.logger[event.level === 'warn' ? 'warn' : 'log']({
        ...jobLogFields(entry.job),
        stage: entry.job.stage,
        ...event.fields,
        msg: event.msg,
      });
      return;
    }
    const { job, kind } = applyEvent(entry.job, event, new Date().toISOString());
    entry.job = job;
    const now = Date.now();
    if (kind !== 'progress' || now - entry.lastPersist >= PERSIST_INTERVAL_MS) {
      this.persist(job);
      entry.lastPersist = now;
    }
    if (kind !== 'progress' || now - entry.lastPublish >= PUBLISH_INTERVAL_MS) {
      this.publish(job, kind);
      entry.lastPublish = now;
    }
  }

  /** Stops a running job from outside (cancel, timeout, shutdown): unsubscribing tears its stage down. */
  private stop(entry: RunningJob, status: JobStatus, reason: Error): Promise<Job> {
    if (entry.ending) return entry.ending;
    entry.subscription?.unsubscribe();
    return this.finish(entry, status, reason);
  }

  private finish(entry: RunningJob, status: JobStatus, reason?: unknown): Promise<Job> {
    if (entry.ending) return entry.ending;
    entry.ending = (async () => {
      // Wait for killed programs and aborted transfers to be gone before touching what they used.
      await Promise.allSettled(entry.tracked);
      let outcome = status;
      let error = reason;
      let cleanedUp = true;
      try {
        if (status === 'completed') await this.pipeline.release(entry.ctx);
        else await this.pipeline.rollback(entry.ctx);
      } catch (cleanupError) {
        outcome = 'failed';
        cleanedUp = false;
        error = new JobFailure(
          'rollback_failed',
          `${describeError(reason) ?? 'job ended'}; cleaning up failed too: ${describeError(cleanupError)}`,
        );
      }
      let ended = this.endState(entry.job, outcome, error);
      // The volume this job created is gone now; if cleanup failed the record keeps it for the next start.
      if (outcome !== 'completed' && cleanedUp) ended = { ...ended, createdVolume: false };
      this.persist(ended);
      this.running.delete(entry.job.id);
      this.publish(ended, 'status');
      const level = outcome === 'completed' ? 'log' : 'warn';
      this.logger[level]({
        ...jobLogFields(ended),
        status: ended.status,
        ...(ended.status === 'completed'
          ? {}
          : {
              stage: ended.stage,
              error_code: ended.errorCode,
              error: ended.error === null ? null : withoutUrlQueries(ended.error),
            }),
        cache_hit: ended.cacheHit,
        // Rollback removed the volume this job had created (only ever one it created).
        ...(outcome !== 'completed' && entry.ctx.createdVolume ? { volume_removed: cleanedUp } : {}),
        duration_seconds: seconds(ended.startedAt ?? ended.createdAt, ended.finishedAt!),
        msg: `job ${ended.status}`,
      });
      this.pump();
      return ended;
    })();
    return entry.ending;
  }

  private endState(job: Job, status: JobStatus, reason?: unknown): Job {
    const now = new Date().toISOString();
    const ended: Job = { ...job, status, updatedAt: now, finishedAt: now };
    if (status === 'completed') return { ...ended, percent: 100 };
    return {
      ...ended,
      errorCode: reason instanceof DomainError ? reason.code : 'internal_error',
      error: describeError(reason) ?? status,
    };
  }

  private publish(job: Job, kind: ChangeKind): void {
    this.updates$.next({ job, kind });
  }
}

/** Seconds between two ISO timestamps, to the millisecond. */
function seconds(from: string, to: string): number {
  return (Date.parse(to) - Date.parse(from)) / 1000;
}

export function describeError(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  if (error instanceof Error) return error.message;
  return String(error);
}
