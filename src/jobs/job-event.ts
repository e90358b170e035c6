import type { Stage } from './job.model';

/**
 * What a pipeline stage emits. The job runner folds these into the job's state; the state changes
 * are what clients see (status, SSE, logs, metrics).
 */
export type JobEvent =
  | { type: 'stage'; stage: Stage }
  | {
      type: 'progress';
      bytesProcessed: number;
      bytesTotal: number | null;
      fraction: number | null;
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
      }>;
    };
