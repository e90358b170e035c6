import { createHash, randomUUID } from 'node:crypto';
import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { filter, Observable } from 'rxjs';
import {
  IdempotencyConflictError,
  InvalidRequestError,
  JobAlreadyFinishedError,
  JobNotFoundError,
  ShuttingDownError,
  VolumeBusyError,
} from '../common/errors';
import { Settings } from '../config/settings';
import { GIB, VOLUME_BACKEND, type VolumeBackend } from '../volumes/volume-backend';
import { findReusable } from '../volumes/volume-reuse';
import { JobQuery, JobRepository } from './job.repository';
import { jobLogFields, requestForLog } from './job-log';
import { JobRunner } from './job-runner';
import { AddressPolicy } from '../storage/address-policy';
import { S3Source } from '../storage/s3.source';
import { Job, JobRequest, PrefetchRequest, ProvisionRequest, isFinal, isProvision } from './job.model';

/** How long an Idempotency-Key is remembered. */
const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

export interface JobStreamEvent {
  event: 'state' | 'status' | 'stage' | 'progress' | 'end';
  job: Job;
}

/** Where a job request came from: its Idempotency-Key and the request that carried it. */
export interface Submission {
  idempotencyKey?: string;
  /** Logged on the 'job accepted' line, the one line that ties a job to its HTTP request. */
  requestId?: string;
}

/** What clients can do with jobs: submit, read, list, cancel, watch. */
@Injectable()
export class JobsService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(JobsService.name);
  private shuttingDown = false;

  constructor(
    private readonly settings: Settings,
    private readonly repository: JobRepository,
    private readonly runner: JobRunner,
    @Inject(VOLUME_BACKEND) private readonly volumes: VolumeBackend,
    private readonly s3: S3Source,
    private readonly addresses: AddressPolicy,
  ) {}

  /** From the first moment of a shutdown, new jobs are refused with 503 instead of being lost. */
  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
  }

  /**
   * Accepts a provision request. With an Idempotency-Key seen in the last 24 h and the same body,
   * returns that job instead (`replayed`); the same key with another body is refused.
   */
  async submit(request: ProvisionRequest, from: Submission = {}): Promise<{ job: Job; replayed: boolean }> {
    const { idempotencyKey } = from;
    this.checkAccepting(request);
    if (request.volume_size_gb > this.settings.volumes.maxSizeGb) {
      throw new InvalidRequestError([
        {
          field: 'volume_size_gb',
          message: `volume_size_gb must not exceed ${this.settings.volumes.maxSizeGb} (MAX_VOLUME_SIZE_GB on this host)`,
        },
      ]);
    }
    const requestHash = hashRequest(request);
    const replay = idempotencyKey ? this.replayed(idempotencyKey, requestHash) : undefined;
    if (replay) return { job: replay, replayed: true };

    // Refuses at submit what the volume stage would refuse later: wrong size, or held open.
    await findReusable(this.volumes, request.volume_name, request.volume_size_gb * GIB);
    return this.insert(request, from, requestHash);
  }

  /** A job that only fills the cache with an image. */
  async prefetch(request: PrefetchRequest, from: Submission = {}): Promise<{ job: Job; replayed: boolean }> {
    const { idempotencyKey } = from;
    this.checkAccepting(request);
    const requestHash = hashRequest(request);
    const replay = idempotencyKey ? this.replayed(idempotencyKey, requestHash) : undefined;
    if (replay) return { job: replay, replayed: true };
    return this.insert(request, from, requestHash);
  }

  private checkAccepting(request: JobRequest): void {
    if (this.shuttingDown) throw new ShuttingDownError();
    const url = new URL(request.image_url);
    if (!url.protocol.startsWith('s3') && !this.s3.handles(url)) {
      const problem = this.addresses.hostProblem(url);
      if (problem)
        throw new InvalidRequestError([{ field: 'image_url', message: `image_url refused: ${problem}` }]);
    }
    if (request.image_url.startsWith('s3:') && !this.s3.configured) {
      throw new InvalidRequestError([
        {
          field: 'image_url',
          message: 'image_url uses s3:// but this daemon has no MINIO_ENDPOINT configured',
        },
      ]);
    }
  }

  /** The checks and the insert are one synchronous transaction: no other request slips between them. */
  private async insert(request: JobRequest, { idempotencyKey, requestId }: Submission, requestHash: string) {
    const outcome = this.repository.transaction(() => {
      const again = idempotencyKey ? this.replayed(idempotencyKey, requestHash) : undefined;
      if (again) return { job: again, replayed: true };
      if (isProvision(request)) {
        const active = this.repository.activeForVolume(request.volume_name);
        if (active) throw new VolumeBusyError(request.volume_name, active.id);
      }
      const job = this.repository.insert(
        { id: randomUUID(), request, idempotencyKey: idempotencyKey ?? null, requestHash },
        new Date().toISOString(),
      );
      return { job, replayed: false };
    });
    // On disk before the client hears 202 (or a replay's answer): the WAL's fdatasync runs in the
    // thread pool, so status and SSE answers go on meanwhile (at synchronous=FULL it ran on the
    // event loop, behind whatever a download had put in the page cache).
    await this.repository.flush();
    if (!outcome.replayed) {
      this.logger.log({
        ...jobLogFields(outcome.job),
        ...requestForLog(request),
        request_id: requestId,
        msg: 'job accepted',
      });
      this.runner.enqueue(outcome.job);
    }
    return outcome;
  }

  get(jobId: string): Job {
    const job = this.runner.live(jobId) ?? this.repository.get(jobId);
    if (!job) throw new JobNotFoundError(jobId);
    return job;
  }

  queuePosition(jobId: string): number | undefined {
    return this.runner.queuePosition(jobId);
  }

  list(query: JobQuery): { jobs: Job[]; total: number } {
    const { jobs, total } = this.repository.list(query);
    return { jobs: jobs.map((job) => this.runner.live(job.id) ?? job), total };
  }

  async cancel(jobId: string): Promise<Job> {
    const job = this.get(jobId);
    if (isFinal(job.status)) throw new JobAlreadyFinishedError(jobId, job.status);
    const cancelled = await this.runner.cancel(jobId);
    // The job finished on its own between the read and the cancel.
    if (!cancelled) throw new JobAlreadyFinishedError(jobId, this.get(jobId).status);
    return cancelled;
  }

  /**
   * The job's current state at once, then every change, ending with the final state. Throws
   * JobNotFoundError at call time, so the caller can answer 404 before streaming.
   */
  watch(jobId: string): Observable<JobStreamEvent> {
    this.get(jobId);
    return new Observable<JobStreamEvent>((subscriber) => {
      // Read and subscribe in the same tick: no update can fall between them.
      const current = this.get(jobId);
      subscriber.next({ event: 'state', job: current });
      if (isFinal(current.status)) {
        subscriber.next({ event: 'end', job: current });
        subscriber.complete();
        return;
      }
      return this.runner.updates.pipe(filter((update) => update.job.id === jobId)).subscribe({
        next: (update) => {
          if (isFinal(update.job.status)) {
            subscriber.next({ event: 'end', job: update.job });
            subscriber.complete();
          } else {
            subscriber.next({ event: update.kind === 'fact' ? 'progress' : update.kind, job: update.job });
          }
        },
        // The daemon is stopping (a pending job stays pending): end the stream so the server can
        // close; clients reconnect to the next start.
        complete: () => subscriber.complete(),
      });
    });
  }

  private replayed(key: string, requestHash: string): Job | undefined {
    const since = new Date(Date.now() - IDEMPOTENCY_WINDOW_MS).toISOString();
    const previous = this.repository.byIdempotencyKey(key, since);
    if (!previous) return undefined;
    if (previous.requestHash !== requestHash) throw new IdempotencyConflictError(key, previous.id);
    return previous;
  }
}

/** Stable hash of a request body: same fields and values → same hash, whatever the key order. */
export function hashRequest(request: JobRequest): string {
  // Keys with an undefined value count as absent: {a: 1, b: undefined} is {a: 1}.
  const canonical = JSON.stringify(
    Object.keys(request)
      .filter((key) => (request as unknown as Record<string, unknown>)[key] !== undefined)
      .sort()
      .map((key) => [key, (request as unknown as Record<string, unknown>)[key]]),
  );
  return createHash('sha256').update(canonical).digest('hex');
}
