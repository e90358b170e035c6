import { rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NoSpaceError, SourceError, messageOf } from '../common/errors';
import type { ImageRef, ImageSource, ReadRequest } from '../storage/image-source';
import { transferInThread } from './download-thread';

export interface DownloadOptions {
  source: ImageSource;
  ref: ImageRef;
  /** Partial file; created if missing, appended to on resume. */
  path: string;
  attempts: number;
  /**
   * `path` holds the first bytes of this object version, left by a crash: they are re-hashed
   * (the hash state cannot be saved) and the transfer goes on after them.
   */
  resumeFromDisk?: boolean;
  /** Milliseconds to wait before retry n (1-based). */
  delayBeforeRetry: (retry: number) => number;
  signal: AbortSignal;
  onBytes: (bytesOnDisk: number, total: number | undefined) => void;
  /** Bytes as they arrive from the source, including any a restart throws away (for metrics). */
  onReceived?: (bytes: number) => void;
  onRetry?: (retry: number, error: Error, resumeAt: number) => void;
  /** How far below the daemon's CPU priority the download thread runs (JOB_NICE). */
  nice?: number;
}

export interface Downloaded {
  sha256: string;
  bytes: number;
  /** The etag the bytes belong to (a replaced object updates it). */
  etag?: string;
}

/**
 * Downloads an image into `path`, hashing the bytes as they arrive, in a worker thread of its
 * own (download-thread.ts) so that the daemon's event loop and heap stay out of it. A transient failure is retried
 * after a delay and resumes from the bytes already on disk (the hash state is rebuilt from that
 * partial file: it is ours, on local disk). If the object changed meanwhile (another etag, or the
 * server sends it whole), the download restarts from zero instead of mixing versions. The file is
 * NOT fsynced: the caller decides when its bytes must be durable (the cache does it once the first
 * jobs have used the image, off their critical path).
 */
export async function download(options: DownloadOptions): Promise<Downloaded> {
  const { source, path, signal } = options;
  let ref = options.ref;
  let lastError: Error | undefined;
  let restarts = 0;
  // In its own thread: the GET, the hash and the writes (download-worker.ts); here, the rules.
  const transfer = async (offset: number, request?: ReadRequest) =>
    transferInThread(
      { path, offset, request, etag: ref.etag },
      signal,
      (bytesOnDisk, received) => {
        if (received > 0) options.onReceived?.(received);
        options.onBytes(bytesOnDisk, ref.size);
      },
      options.nice,
    );
  if (options.resumeFromDisk) {
    const bytes = await sizeOf(path);
    // Every byte arrived before the crash: a range from the end would be answered 416. Hashed only.
    if (bytes === ref.size) {
      const whole = await transfer(bytes);
      if (whole.kind === 'done') return { sha256: whole.sha256, bytes: whole.bytes, etag: ref.etag };
    }
  }

  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    if (attempt > 1) await sleep(options.delayBeforeRetry(attempt - 1), undefined, { signal });
    // A retry resumes after the bytes on disk (the thread re-hashes them); a first try starts at 0.
    const offset = attempt === 1 && !options.resumeFromDisk ? 0 : await sizeOf(path);
    if (attempt > 1) options.onRetry?.(attempt - 1, lastError!, offset);
    try {
      const outcome = await transfer(offset, await source.readRequest(ref, offset));
      if (outcome.kind === 'replaced') {
        // A range of a different version: start over from zero with the new version, in a new
        // file (a reader holding the old one keeps its bytes until told: transfer.ts).
        await rm(path, { force: true });
        ref = { ...ref, etag: outcome.etag, size: undefined };
        if (++restarts > 3)
          throw new SourceError(`${ref.url} keeps changing while it is downloaded`, { url: ref.url });
        attempt--; // not a failure of the transfer
        continue;
      }
      if (outcome.etag !== ref.etag) ref = { ...ref, etag: outcome.etag, size: undefined };
      if (ref.size !== undefined && outcome.bytes < ref.size) {
        throw new SourceError(
          `${ref.url} ended after ${outcome.bytes} of ${ref.size} bytes`,
          { url: ref.url },
          true,
        );
      }
      return { sha256: outcome.sha256, bytes: outcome.bytes, etag: ref.etag };
    } catch (error) {
      if (signal.aborted) throw error;
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new NoSpaceError(dirname(path), `downloading ${ref.url} (CACHE_DIR)`);
      }
      const retryable = error instanceof SourceError ? error.retryable : isStreamBreak(error);
      lastError =
        retryable && !(error instanceof SourceError)
          ? new SourceError(`transfer of ${ref.url} broke off: ${messageOf(error)}`, { url: ref.url }, true)
          : (error as Error);
      if (!retryable) throw lastError;
    }
  }
  throw new SourceError(
    `${lastError!.message} (gave up after ${options.attempts} tries; MINIO_RETRY_ATTEMPTS)`,
    { ...(lastError as SourceError).details, url: ref.url, attempts: options.attempts },
  );
}

/** Bytes in the partial file (0 when there is none). */
function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => 0,
  );
}

/** A body that stopped mid-way (connection reset, premature close) is worth a retry. */
function isStreamBreak(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return (
    ['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED'].includes(code) ||
    /aborted|socket hang up|premature close/i.test(messageOf(error))
  );
}

/**
 * The wait before retry n: the nth entry of the list (the last one repeats) or, for a single
 * number, that number doubled per retry; plus up to 20 % jitter so many hosts do not retry in step.
 */
export function retryDelay(spec: string, retry: number, random: () => number = Math.random): number {
  const steps = spec.split(',').map(Number);
  const base = steps.length === 1 ? steps[0] * 2 ** (retry - 1) : steps[Math.min(retry, steps.length) - 1];
  return Math.round(base * (1 + 0.2 * random()));
}
