import type { Readable } from 'node:stream';
import { SourceError } from '../common/errors';

/** Reads a small text body, refusing one larger than `limit` bytes. */
export async function readSmallText(body: Readable, limit: number, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new SourceError(`${what} is larger than ${limit} bytes; it is not a checksum file`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
