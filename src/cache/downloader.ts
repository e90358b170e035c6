import { createHash, Hash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open, stat, truncate, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { NoSpaceError, SourceError, messageOf } from '../common/errors';
import type { ImageRef, ImageSource } from '../storage/image-source';

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
}

export interface Downloaded {
  sha256: string;
  bytes: number;
  /** The etag the bytes belong to (a replaced object updates it). */
  etag?: string;
}

/**
 * Downloads an image into `path`, hashing the bytes as they arrive. A transient failure is retried
 * after a delay and resumes from the bytes already on disk (the hash state is rebuilt from that
 * partial file: it is ours, on local disk). If the object changed meanwhile (another etag, or the
 * server sends it whole), the download restarts from zero instead of mixing versions. The file is
 * NOT fsynced: the caller decides when its bytes must be durable (the cache does it once the first
 * jobs have used the image, off their critical path).
 */
export async function download(options: DownloadOptions): Promise<Downloaded> {
  const { source, path, signal } = options;
  let ref = options.ref;
  let hash = createHash('sha256');
  let bytes = 0;
  let lastError: Error | undefined;
  let restarts = 0;
  if (options.resumeFromDisk) {
    ({ hash, bytes } = await rehash(path));
    options.onBytes(bytes, ref.size);
    // Every byte arrived before the crash: a range from the end would be answered 416.
    if (bytes === ref.size) return { sha256: hash.digest('hex'), bytes, etag: ref.etag };
  }

  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    if (attempt > 1) {
      await sleep(options.delayBeforeRetry(attempt - 1), undefined, { signal });
      ({ hash, bytes } = await rehash(path));
      options.onRetry?.(attempt - 1, lastError!, bytes);
    }
    try {
      const answer = await source.read(ref, bytes, signal);
      const replaced = ref.etag !== undefined && answer.etag !== undefined && answer.etag !== ref.etag;
      if (answer.start === 0 && bytes > 0) {
        // The server sent the object from its start: drop what we had.
        await truncate(path, 0);
        ({ hash, bytes } = { hash: createHash('sha256'), bytes: 0 });
      } else if (replaced && bytes > 0) {
        // A range of a different version: useless. Start over from zero with the new version.
        answer.body.destroy();
        await truncate(path, 0);
        ref = { ...ref, etag: answer.etag, size: undefined };
        ({ hash, bytes } = { hash: createHash('sha256'), bytes: 0 });
        if (++restarts > 3)
          throw new SourceError(`${ref.url} keeps changing while it is downloaded`, { url: ref.url });
        attempt--; // not a failure of the transfer
        continue;
      }
      if (replaced) ref = { ...ref, etag: answer.etag, size: undefined };
      bytes = await append(
        answer.body,
        path,
        hash,
        bytes,
        (n, chunk) => {
          options.onReceived?.(chunk);
          options.onBytes(n, ref.size);
        },
        signal,
      );
      if (ref.size !== undefined && bytes < ref.size) {
        throw new SourceError(`${ref.url} ended after ${bytes} of ${ref.size} bytes`, { url: ref.url }, true);
      }
      return { sha256: hash.digest('hex'), bytes, etag: ref.etag };
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

async function append(
  body: NodeJS.ReadableStream,
  path: string,
  hash: Hash,
  start: number,
  onBytes: (bytes: number, chunk: number) => void,
  signal: AbortSignal,
): Promise<number> {
  let bytes = start;
  // O_NOFOLLOW: the partial file is never reached through a link (tmp/ itself is checked at start).
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW;
  const file = await open(path, flags | (start === 0 ? constants.O_TRUNC : constants.O_APPEND), 0o600);
  // Each batch of chunks is written, then hashed, then reported: `onBytes` counts bytes that are
  // in the file, so a reader of the growing file (the NBD export of a streaming convert) never
  // asks for bytes the file does not hold yet. While one write is in the thread pool the stream
  // gathers the chunks that arrive (up to highWaterMark) and `writev` takes them in one call:
  // one write per 16-64 KiB HTTP chunk, each waiting its turn in the pool behind the export's
  // reads, held the download of a streaming job to a third of the link.
  const sink = new Writable({
    highWaterMark: 4 * 1024 * 1024,
    writev(chunks, done) {
      const buffers = chunks.map(({ chunk }) => chunk as Buffer);
      const written = writeAll(file, buffers);
      // Hashed while the thread pool writes (a failed write fails the transfer; a retry re-hashes
      // the file from disk).
      let batch = 0;
      for (const buffer of buffers) {
        hash.update(buffer);
        batch += buffer.length;
      }
      written.then(() => {
        bytes += batch;
        onBytes(bytes, batch);
        done();
      }, done);
    },
    final(done) {
      file.close().then(() => done(), done);
    },
    destroy(error, done) {
      file.close().then(
        () => done(error),
        () => done(error),
      );
    },
  });
  await pipeline(body, sink, { signal });
  return bytes;
}

/** Writes every buffer at the file's current position, however many calls it takes. */
async function writeAll(file: FileHandle, buffers: Buffer[]): Promise<void> {
  let rest = buffers;
  while (rest.length > 0) {
    let { bytesWritten } = await file.writev(rest);
    const left: Buffer[] = [];
    for (const buffer of rest) {
      if (bytesWritten >= buffer.length) bytesWritten -= buffer.length;
      else {
        left.push(bytesWritten > 0 ? buffer.subarray(bytesWritten) : buffer);
        bytesWritten = 0;
      }
    }
    rest = left;
  }
}

/** Hash state and length of a partial file, to resume after it. */
async function rehash(path: string): Promise<{ hash: Hash; bytes: number }> {
  const hash = createHash('sha256');
  const size = await stat(path).then(
    (s) => s.size,
    () => 0,
  );
  if (size > 0) {
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
      hash.update(chunk as Buffer);
  }
  return { hash, bytes: size };
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
