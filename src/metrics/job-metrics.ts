import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import type { Counter, Histogram } from 'prom-client';
import type { Subscription } from 'rxjs';
import { JobRunner, type JobUpdate } from '../jobs/job-runner';
import { isFinal, type Job } from '../jobs/job.model';
import { STAGES, type Stage } from '../jobs/pipeline/stages';
import {
  BYTES_WRITTEN,
  JOB_DURATION,
  JOB_OUTCOMES,
  JOBS_TOTAL,
  STAGE_DURATION,
  type JobOutcome,
} from './metrics';

/** What is known of a job between its updates. */
interface Tracked {
  stage: Stage | null;
  stageStartedAt: number | null;
  /** Bytes of this job already added to bytes_written_total. */
  written: number;
}

/**
 * Job metrics, derived from JobRunner.updates (every job change as it happens): jobs by status,
 * run time by final status, the duration of each finished stage, and the bytes written into volumes.
 */
@Injectable()
export class JobMetrics implements OnModuleInit, OnModuleDestroy {
  private readonly tracked = new Map<string, Tracked>();
  private subscription?: Subscription;

  constructor(
    private readonly runner: JobRunner,
    @InjectMetric(JOBS_TOTAL) private readonly jobs: Counter<string>,
    @InjectMetric(JOB_DURATION) private readonly jobDuration: Histogram<string>,
    @InjectMetric(STAGE_DURATION) private readonly stageDuration: Histogram<string>,
    @InjectMetric(BYTES_WRITTEN) private readonly bytesWritten: Counter<string>,
  ) {}

  onModuleInit(): void {
    // Every series exists from the start, so rate() and alerts see a 0 rather than nothing.
    for (const status of JOB_OUTCOMES) {
      this.jobs.inc({ status }, 0);
      if (status !== 'started') this.jobDuration.zero({ status });
    }
    for (const stage of STAGES) this.stageDuration.zero({ stage });
    this.bytesWritten.inc(0);
    this.subscription = this.runner.updates.subscribe((update) => this.onUpdate(update));
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  private onUpdate({ job, kind }: JobUpdate): void {
    if (kind === 'status' && job.status === 'pending') {
      // Published once, when the job is queued (also for pending jobs resumed at start).
      this.jobs.inc({ status: 'started' });
      return;
    }
    let tracked = this.tracked.get(job.id);
    if (!tracked) {
      tracked = { stage: null, stageStartedAt: null, written: 0 };
      this.tracked.set(job.id, tracked);
    }
    if (kind === 'stage') {
      const now = Date.parse(job.stageStartedAt ?? job.updatedAt);
      this.endStage(tracked, now);
      tracked.stage = job.stage;
      tracked.stageStartedAt = now;
    } else if (kind === 'progress' && job.stage === 'converting') {
      this.addWritten(tracked, job.bytesProcessed);
    } else if (kind === 'progress' && job.stage === 'streaming') {
      this.addWritten(tracked, job.writeBytesProcessed ?? 0);
    } else if (kind === 'status' && isFinal(job.status)) {
      this.finish(job, tracked);
    }
  }

  private finish(job: Job, tracked: Tracked): void {
    this.tracked.delete(job.id);
    const status = job.status as JobOutcome;
    const finishedAt = Date.parse(job.finishedAt ?? job.updatedAt);
    // Only a completed job finished its last stage; a failed or cancelled one broke it off.
    if (job.status === 'completed') this.endStage(tracked, finishedAt);
    this.addWritten(tracked, writtenBy(job, tracked));
    this.jobs.inc({ status });
    // A job cancelled while it waited never ran: it has no run time.
    if (job.startedAt) {
      this.jobDuration.observe({ status }, Math.max(0, finishedAt - Date.parse(job.startedAt)) / 1000);
    }
  }

  private endStage(tracked: Tracked, endedAt: number): void {
    if (tracked.stage === null || tracked.stageStartedAt === null) return;
    this.stageDuration.observe(
      { stage: tracked.stage },
      Math.max(0, endedAt - tracked.stageStartedAt) / 1000,
    );
  }

  /** Brings the job's share of bytes_written_total up to `total` (it never goes down). */
  private addWritten(tracked: Tracked, total: number): void {
    if (total <= tracked.written) return;
    this.bytesWritten.inc(total - tracked.written);
    tracked.written = total;
  }
}

/**
 * Bytes a finished job wrote. Progress reaches this class throttled, so the final state decides:
 * a job stopped while converting wrote what its last progress said; one that reached finalizing
 * converted the whole image, whose virtual size the finalizing stage reports as its progress.
 */
function writtenBy(job: Job, tracked: Tracked): number {
  if (job.stage === 'converting') return job.bytesProcessed;
  if (job.stage === 'streaming') return job.writeBytesProcessed ?? tracked.written;
  if (job.stage === 'finalizing') return job.bytesTotal ?? tracked.written;
  return tracked.written;
}
