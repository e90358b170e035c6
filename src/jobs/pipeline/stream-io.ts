import { open, type FileHandle } from 'node:fs/promises';
import type { Observable } from 'rxjs';
import { jobLog } from '../job-event';
import type { StageEvent } from './job-context';

/** Small I/O helpers of the streaming write (stream-write.ts). */

/** The growing file opened read-only, or undefined when it is gone already (renamed into the cache). */
export async function openGrowing(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export async function readHead(handle: FileHandle, length: number): Promise<Buffer> {
  const head = Buffer.alloc(length);
  const { bytesRead } = await handle.read(head, 0, length, 0);
  return head.subarray(0, bytesRead);
}

/** Rejects when the signal aborts first. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/** Runs an observable to its end, handing each value on; aborting the signal unsubscribes it (its work stops). */
export function forward<T>(
  source: Observable<T>,
  signal: AbortSignal,
  next: (value: T) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      subscription.unsubscribe();
      reject(signal.reason as Error);
    };
    const subscription = source.subscribe({
      next,
      error: (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
      complete: () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The job log's line for today's path: download, then inspect and convert. */
export function afterDownload(reason: string): StageEvent {
  return jobLog('write path: download, then convert', { write_path: 'download_then_convert', reason });
}
