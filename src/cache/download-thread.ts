import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SourceError } from '../common/errors';
import type { CrossingError, WorkerInput, WorkerMessage } from './download-worker';
import type { TransferJob, TransferOutcome } from './transfer';

/** How long a cancelled thread may take to close its request and file before it is terminated. */
const ABORT_GRACE_MS = 2000;

/**
 * Runs one try of a download in its own worker thread (download-worker.ts) and settles with its
 * outcome. `onProgress` gets the bytes in the file and the bytes received since its last call.
 * The thread runs `nice` below the daemon's CPU priority (JOB_NICE). Cancelling `signal` asks the
 * thread to stop; a thread that dies fails the try as retryable.
 */
export function transferInThread(
  job: TransferJob,
  signal: AbortSignal,
  onProgress: (bytesOnDisk: number, received: number) => void,
  nice = 0,
): Promise<TransferOutcome> {
  const label = job.request?.label ?? job.path;
  return new Promise<TransferOutcome>((resolve, reject) => {
    // Beside this file in dist/src/cache (the .deb ships dist/src whole).
    const workerData: WorkerInput = { job, nice };
    const worker = new Worker(join(__dirname, 'download-worker.js'), { workerData });
    let settled = false;
    const settle = (error: Error | undefined, outcome?: TransferOutcome) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      clearTimeout(grace);
      void worker.terminate();
      if (error) reject(error);
      else resolve(outcome!);
    };
    let grace: NodeJS.Timeout | undefined;
    const onAbort = () => {
      worker.postMessage({ kind: 'abort' });
      grace = setTimeout(() => settle(signal.reason as Error), ABORT_GRACE_MS);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (message: WorkerMessage) => {
      if (message.kind === 'progress') onProgress(message.bytesOnDisk, message.received);
      else if (message.kind === 'outcome') settle(undefined, message.outcome);
      else settle(signal.aborted ? (signal.reason as Error) : revive(message.error));
    });
    worker.on('error', (error) =>
      settle(
        new SourceError(`the download thread of ${label} failed: ${error.message}`, { url: label }, true),
      ),
    );
    worker.on('exit', (code) =>
      settle(
        new SourceError(`the download thread of ${label} stopped (exit code ${code})`, { url: label }, true),
      ),
    );
  });
}

/** The error the thread reported, as the daemon's own: a SourceError stays one, an errno keeps its code. */
function revive(error: CrossingError): Error {
  if (error.retryable !== undefined) return new SourceError(error.message, error.details, error.retryable);
  const revived = new Error(error.message) as NodeJS.ErrnoException;
  revived.name = error.name;
  if (error.code !== undefined) revived.code = error.code;
  return revived;
}
