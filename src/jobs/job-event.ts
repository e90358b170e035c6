import type { Stage } from './pipeline/stages';

/**
 * What a pipeline stage emits. The job runner folds these into the job's state; the state changes
 * are what clients see (status, SSE, logs, metrics). A `log` event changes nothing: it is a line
 * of the job's story, which the runner writes with the job's fields (job_id, correlation_id,
 * volume_name).
 */
export type JobEvent =
  | { type: 'stage'; stage: Stage }
  | {
      type: 'progress';
      bytesProcessed: number;
      bytesTotal: number | null;
      fraction: number | null;
      /** While streaming: the write's counters beside the download's (bytesProcessed/bytesTotal). */
      write?: { bytes: number; total: number };
    }
  | {
      type: 'fact';
      facts: Partial<{
        cacheHit: boolean;
        imagePath: string;
        imageSha256: string;
        checksumVerified: boolean;
        volumePath: string;
        createdVolume: boolean;
        reusedVolume: boolean;
        cloneBase: string;
        resumedFromBytes: number;
      }>;
    }
  | { type: 'log'; level: 'info' | 'warn'; msg: string; fields: Record<string, unknown> };

/** The events that change the job's state (all but `log`). */
export type StateEvent = Exclude<JobEvent, { type: 'log' }>;

/** A line of the job's story, for a stage to emit. */
export function jobLog(
  msg: string,
  fields: Record<string, unknown> = {},
  level: 'info' | 'warn' = 'info',
): JobEvent {
  return { type: 'log', level, msg, fields };
}
