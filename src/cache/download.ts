import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Streams `body` into `path`, hashing the bytes as they pass (one pass, never a second read),
 * and fsyncs the file before resolving. Reports bytes written through `onBytes`.
 */
export async function streamToFile(
  body: Readable,
  path: string,
  onBytes: (bytes: number) => void,
  signal: AbortSignal,
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      onBytes(bytes);
      done(null, chunk);
    },
  });
  // flush: true makes the write stream fsync before it closes.
  await pipeline(body, meter, createWriteStream(path, { flags: 'wx', mode: 0o600, flush: true }), { signal });
  return { sha256: hash.digest('hex'), bytes };
}
