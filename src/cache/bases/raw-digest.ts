import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** sha256 of a file's or a device's content; with `length`, of its first `length` bytes only. */
export async function sha256Of(path: string, signal: AbortSignal, length?: number): Promise<string> {
  const hash = createHash('sha256');
  const range = length === undefined ? {} : { start: 0, end: length - 1 };
  for await (const chunk of createReadStream(path, { signal, highWaterMark: 4 * 1024 * 1024, ...range })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
