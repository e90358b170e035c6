import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { Observable, Subject, Subscription } from 'rxjs';
import {
  JobCancelledError,
  JobInterruptedError,
  JobTimeoutError,
  RollbackFailedError,
  ShutdownCancelError,
} from '../common/errors';
import { Settings } from '../config/settings';
import type { JobEvent } from './job-event';
import { jobEndedLog, jobLogFields, seconds } from './job-log';
import { JobQueue } from './job-queue';
import { JobRepository } from './job.repository';
import { JobStateWriter } from './job-state-writer';
import { ChangeKind, applyEvent, describeError, endedJob } from './job-state';
import type { Job, JobRequest, JobStatus } from './job.model';
import type { JobContext } from './pipeline/job-context';
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
  /** Settles with the ended job, however it ends: what shutdown waits for. */
  ended: Promise<Job>;
  settle: (ending: Promise<Job>) => void;
}

/** Progress is written to SQLite (stage and status changes at once) and pushed to watchers at most this often per job. */
const PERSIST_INTERVAL_MS = 1000;
const PUBLISH_INTERVAL_MS = 200;

/**
 * Runs jobs: a FIFO queue, at most MAX_CONCURRENT_JOBS at once, each job's pipeline subscribed,
 * its events folded into the job, persisted (throttled) and published. Ending a job (success,
 * failure, cancel, timeout, shutdown, and a job a restart interrupted) goes through finish(), the
 * one place rollback runs.
 */
@Injectable()
export class JobRunner implements BeforeApplicationShutdown {
  private readonly logger = new Logger(JobRunner.name);
  private readonly queue = new JobQueue();
  private readonly running = new Map<string, RunningJob>();
  private readonly updates$ = new Subject<JobUpdate>();
  private readonly states: JobStateWriter;
  private accepting = true;

  constructor(
    private readonly settings: Settings,
    private readonly repository: JobRepository,
    private readonly pipeline: ProvisionPipeline,
  ) {
    this.states = new JobStateWriter(repository, this.logger);
  }

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
    return this.queue.position(jobId);
  }

  /** The live state of a running job (fresher than the throttled database row). */
  live(jobId: string): Job | undefined {
    return this.running.get(jobId)?.job ?? this.states.unsaved(jobId);
  }

  enqueue(job: Job): void {
    this.queue.push(job.id);
    this.publish(job, 'status');
    this.pump();
  }

  /** Cancels a pending or running job and resolves once its rollback is done. */
  async cancel(jobId: string): Promise<Job | undefined> {
    const queued = this.queue.remove(jobId) ? this.repository.get(jobId) : undefined;
    if (queued) {
      const ended = endedJob(queued, 'cancelled', new JobCancelledError(), new Date().toISOString());
      this.states.write(ended);
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
      const finished = Promise.allSettled(running.map((entry) => entry.ended));
      const graceOver = new Promise<'grace-over'>((resolve) =>
        setTimeout(() => resolve('grace-over'), this.settings.jobs.shutdownGraceSeconds * 1000).unref(),
      );
      if ((await Promise.race([finished, graceOver])) === 'grace-over') {
        await Promise.allSettled(
          [...this.running.values()].map((entry) =>
            this.stop(entry, 'cancelled', new ShutdownCancelError(this.settings.jobs.shutdownGraceSeconds)),
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

  /**
   * Ends a job that a restart interrupted and that is not resumed (RESUME_INTERRUPTED, RESUME_MAX)
   * the way every job ends: through finish(), whose rollback removes the volume the record says it
   * created.
   */
  endInterrupted(stored: Job, reason: Error = new JobInterruptedError()): Promise<Job> {
    return this.finish(this.entryFor(stored), 'failed', reason);
  }

  private pump(): void {
    while (this.accepting && this.running.size < this.settings.jobs.maxConcurrent) {
      const jobId = this.queue.take();
      if (jobId === undefined) return;
      this.start(jobId);
    }
  }

  /** A job's runtime state; its context starts from what the record says (a restart's job may have made a volume). */
  private entryFor(job: Job): RunningJob {
    let settle: RunningJob['settle'] = () => undefined;
    const ended = new Promise<Job>((resolve) => (settle = resolve));
    const entry: RunningJob = {
      job,
      tracked: [],
      lastPersist: 0,
      lastPublish: 0,
      ended,
      settle,
      ctx: {
        id: job.id,
        request: job.request,
        createdVolume: job.createdVolume,
        track: (settled) => entry.tracked.push(settled),
        persisted: () => this.states.flush(),
      },
    };
    return entry;
  }

  private start(jobId: string): void {
    const stored = this.repository.get(jobId);
    if (!stored) return; // deleted while it waited: nothing to run
    const now = new Date().toISOString();
    const entry = this.entryFor({ ...stored, status: 'running', startedAt: now, updatedAt: now });
    const job = entry.job;
    this.running.set(jobId, entry);
    this.states.writeAndFlush(job); // no fsync on the event loop: see onEvent
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
      // No fsync on the event loop (it waited up to 0.5 s behind other jobs' downloads; a crash
      // keeps the row: it is in the WAL). Facts are fdatasynced at once in the thread pool, and a
      // stage that must not go on before one is on disk awaits ctx.persisted().
      if (kind === 'fact') this.states.writeAndFlush(job);
      else this.states.write(job, false);
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
    entry.ending = this.end(entry, status, reason);
    entry.settle(entry.ending);
    return entry.ending;
  }

  private async end(entry: RunningJob, status: JobStatus, reason?: unknown): Promise<Job> {
    // Wait for killed programs and aborted transfers to be gone before touching what they used.
    await Promise.allSettled(entry.tracked);
    // A completed job's record is on disk before its image is let go (letting go starts the new
    // cache file's fsync, which the record's would then wait behind) and before anyone is told.
    let ended =
      status === 'completed' ? endedJob(entry.job, status, undefined, new Date().toISOString()) : undefined;
    if (ended) await this.states.writeDurably(ended);
    let outcome = status;
    let error = reason;
    let cleanedUp = true;
    try {
      if (status === 'completed') await this.pipeline.release(entry.ctx);
      else await this.pipeline.rollback(entry.ctx);
    } catch (cleanupError) {
      outcome = 'failed';
      cleanedUp = false;
      error = new RollbackFailedError(
        describeError(reason) ?? 'job ended',
        String(describeError(cleanupError)),
      );
      ended = undefined;
    }
    // The volume this job created is gone now; if cleanup failed the record still says it made one.
    if (!ended) {
      ended = endedJob(entry.job, outcome, error, new Date().toISOString());
      if (outcome !== 'completed' && cleanedUp) ended = { ...ended, createdVolume: false };
      await this.states.writeDurably(ended);
    }
    this.running.delete(entry.job.id);
    this.publish(ended, 'status');
    // Rollback removed the volume this job had created (only ever one it created).
    const removed = outcome !== 'completed' && entry.ctx.createdVolume ? cleanedUp : undefined;
    this.logger[outcome === 'completed' ? 'log' : 'warn'](jobEndedLog(ended, removed));
    this.pump();
    return ended;
  }

  private publish(job: Job, kind: ChangeKind): void {
    this.updates$.next({ job, kind });
  }
}
