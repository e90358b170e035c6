import { createHash, Hash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SourceError } from '../common/errors';
import type { ReadRequest } from '../storage/image-source';
import { readBody } from '../storage/read-body';

/** One try of a download, as the download thread runs it (download-worker.ts). */
export interface TransferJob {
  /** The partial file. */
  path: string;
  /** Bytes of `path` to keep and go on after (they are re-hashed); 0: the file starts over. */
  offset: number;
  /** The GET of the bytes from `offset`; none when the file already holds them all (only hashed). */
  request?: ReadRequest;
  /** The version the kept bytes belong to. */
  etag?: string;
}

export type TransferOutcome =
  /** Every byte the answer had is in the file, with the file's digest and the version it holds. */
  | { kind: 'done'; sha256: string; bytes: number; etag?: string }
  /** The source answered with a range of another version: nothing was written; the caller restarts from 0. */
  | { kind: 'replaced'; etag?: string };

/** Progress of a try: bytes in the file (a reader may read that far) and bytes received since the last report. */
export type TransferProgress = (bytesOnDisk: number, received: number, force: boolean) => void;

/**
 * Fetches `job.request` into the partial file, hashing the bytes as they arrive. The rules that
 * span tries (attempts, delays, restarts, errors an operator reads) stay with download().
 */
export async function transferOnce(
  job: TransferJob,
  signal: AbortSignal,
  progress: TransferProgress,
): Promise<TransferOutcome> {
  let { hash, bytes } = job.offset > 0 ? await rehash(job.path) : { hash: createHash('sha256'), bytes: 0 };
  if (bytes !== job.offset) {
    throw new SourceError(
      `the partial file ${job.path} holds ${bytes} bytes, not the ${job.offset} expected`,
    );
  }
  progress(bytes, 0, true);
  if (!job.request) return { kind: 'done', sha256: hash.digest('hex'), bytes, etag: job.etag };
  const answer = await readBody(job.request, signal);
  const replaced = job.etag !== undefined && answer.etag !== undefined && answer.etag !== job.etag;
  if (answer.start === 0 && bytes > 0) {
    // The server sent the object from its start: drop what we had (append starts a new file), and
    // tell readers at once.
    ({ hash, bytes } = { hash: createHash('sha256'), bytes: 0 });
    progress(0, 0, true);
  } else if (replaced && bytes > 0) {
    // A range of a different version: useless.
    answer.body.destroy();
    return { kind: 'replaced', etag: answer.etag };
  }
  bytes = await append(answer.body, job.path, hash, bytes, progress, signal);
  return { kind: 'done', sha256: hash.digest('hex'), bytes, etag: replaced ? answer.etag : job.etag };
}

async function append(
  body: NodeJS.ReadableStream,
  path: string,
  hash: Hash,
  start: number,
  progress: TransferProgress,
  signal: AbortSignal,
): Promise<number> {
  let bytes = start;
  // From byte 0 the bytes go into a new file, never over the old one's: a reader that holds the old
  // file open (the NBD export of a streaming convert) keeps reading the bytes it was promised until
  // it is told the download restarted, instead of finding them truncated or replaced under it.
  if (start === 0) await rm(path, { force: true });
  // O_NOFOLLOW: the partial file is never reached through a link (tmp/ itself is checked at start).
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW;
  const file = await open(path, flags | (start === 0 ? constants.O_EXCL : constants.O_APPEND), 0o600);
  // Each batch of chunks is written, then hashed, then reported: progress counts bytes that are
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
        progress(bytes, batch, false);
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
  progress(bytes, 0, true);
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

/** Hash state and length of a partial file, to resume after it (the hash state cannot be saved). */
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
