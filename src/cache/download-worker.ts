/**
 * The download thread: runs one try of a download (transferOnce: the GET, the sha256, the writes
 * to the partial file) off the daemon's event loop. Its heap holds only this transfer, so the
 * garbage collections the socket's buffers cause are cheap, and the daemon's loop sees only the
 * messages below (docs/performance.md, "The download in a worker thread").
 *
 *   in:  workerData: WorkerInput; a message { kind: 'abort' } cancels
 *   out: { kind: 'progress', bytesOnDisk, received } at most every PROGRESS_MS (and at once when
 *        the file shrinks or is complete), then { kind: 'outcome', outcome } or { kind: 'error', error }
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { SourceError } from '../common/errors';
import { transferOnce, type TransferJob, type TransferOutcome } from './transfer';

export const PROGRESS_MS = 50;

export interface WorkerInput {
  job: TransferJob;
  /** How far below the daemon's CPU priority this thread runs (JOB_NICE). */
  nice: number;
}

/** An error as it crosses to the daemon's thread (download-thread.ts makes it an Error again). */
export interface CrossingError {
  name: string;
  message: string;
  code?: string;
  /** Set for a SourceError: whether a retry may help. */
  retryable?: boolean;
  details?: Record<string, unknown>;
}

export type WorkerMessage =
  | { kind: 'progress'; bytesOnDisk: number; received: number }
  | { kind: 'outcome'; outcome: TransferOutcome }
  | { kind: 'error'; error: CrossingError };

function crossing(error: unknown): CrossingError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  return {
    name: error.name,
    message: error.message,
    code: (error as NodeJS.ErrnoException).code,
    retryable: error instanceof SourceError ? error.retryable : undefined,
    details: error instanceof SourceError ? error.details : undefined,
  };
}

/**
 * Lowers this thread's CPU priority, not the daemon's: on Linux a priority belongs to a thread, and
 * setpriority(2) given a thread's id changes that thread alone. /proc/thread-self names the id
 * ("PID/task/TID"); Node has no gettid(). Where that fails the download runs at the daemon's
 * priority: it matters more than its priority.
 */
export function lowerThreadPriority(nice: number): void {
  if (nice <= 0) return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(tid, Math.min(19, getPriority(tid) + nice));
  } catch {
    // not Linux, or /proc not mounted
  }
}

if (parentPort) {
  const { job, nice } = workerData as WorkerInput;
  lowerThreadPriority(nice);
  const port = parentPort;
  const post = (message: WorkerMessage) => port.postMessage(message);
  const abort = new AbortController();
  port.on('message', (message: { kind: string }) => {
    if (message.kind === 'abort') abort.abort();
  });
  let last = 0;
  let received = 0;
  transferOnce(job, abort.signal, (bytesOnDisk, chunk, force) => {
    received += chunk;
    const now = Date.now();
    if (!force && now - last < PROGRESS_MS) return;
    last = now;
    post({ kind: 'progress', bytesOnDisk, received });
    received = 0;
  }).then(
    (outcome) => post({ kind: 'outcome', outcome }),
    (error) => post({ kind: 'error', error: crossing(error) }),
  );
}
