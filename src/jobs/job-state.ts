import { DomainError } from '../common/errors';
import type { StateEvent } from './job-event';
import { Job, JobStatus, overallPercent } from './job.model';

export type ChangeKind = 'status' | 'stage' | 'progress' | 'fact';

/**
 * Folds one pipeline event into the job. Pure: returns the new job and what kind of change it was.
 * The overall percent never goes down, whatever a stage reports.
 */
export function applyEvent(job: Job, event: StateEvent, now: string): { job: Job; kind: ChangeKind } {
  switch (event.type) {
    case 'stage':
      return {
        job: {
          ...job,
          stage: event.stage,
          stageStartedAt: now,
          percent: Math.max(job.percent, overallPercent(event.stage, 0)),
          bytesProcessed: 0,
          bytesTotal: null,
          writeBytesProcessed: null,
          writeBytesTotal: null,
          updatedAt: now,
        },
        kind: 'stage',
      };
    case 'progress': {
      const percent =
        event.fraction === null || job.stage === null
          ? job.percent
          : overallPercent(job.stage, event.fraction);
      return {
        job: {
          ...job,
          percent: Math.max(job.percent, percent),
          bytesProcessed: event.bytesProcessed,
          bytesTotal: event.bytesTotal,
          writeBytesProcessed: event.write?.bytes ?? null,
          writeBytesTotal: event.write?.total ?? null,
          updatedAt: now,
        },
        kind: 'progress',
      };
    }
    case 'fact':
      return { job: { ...job, ...event.facts, updatedAt: now }, kind: 'fact' };
  }
}

/**
 * The job as it ends. Pure. A completed job is at 100 %; any other outcome records the reason:
 * its stable code when it is a domain error, else `internal_error`.
 */
export function endedJob(job: Job, status: JobStatus, reason: unknown, now: string): Job {
  const ended: Job = { ...job, status, updatedAt: now, finishedAt: now };
  if (status === 'completed') return { ...ended, percent: 100 };
  return {
    ...ended,
    errorCode: reason instanceof DomainError ? reason.code : 'internal_error',
    error: describeError(reason) ?? status,
  };
}

export function describeError(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  if (error instanceof Error) return error.message;
  return String(error);
}
