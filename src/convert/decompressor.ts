import { open } from 'node:fs/promises';
import { Injectable, Optional } from '@nestjs/common';
import { ImageRejectedError } from '../common/errors';
import { commandError, run } from '../common/exec';
import { Settings } from '../config/settings';

/** Compressed wrappers around an image, by magic bytes. */
export type Wrapper = 'gzip' | 'xz' | 'zstd' | 'bzip2';

export function detectWrapper(header: Buffer): Wrapper | undefined {
  const hex = header.subarray(0, 6).toString('hex');
  if (hex.startsWith('1f8b')) return 'gzip';
  if (hex === 'fd377a585a00') return 'xz';
  if (hex.startsWith('28b52ffd')) return 'zstd';
  if (hex.startsWith('425a68')) return 'bzip2';
  return undefined;
}

const PROGRAMS: Record<Wrapper, string> = { gzip: 'gzip', xz: 'xz', zstd: 'zstd', bzip2: 'bzip2' };

/** Blocks of zeros this long are skipped (left as holes) rather than written. */
const BLOCK = 64 * 1024;

/**
 * Adapter over gzip/xz/zstd/bzip2: decompresses into a sparse file, streaming (the image is never
 * held in memory), skipping runs of zeros so a raw.xz unpacks to a file as small as its data.
 * Stops at `maxBytes`: a decompression bomb is refused, not unpacked.
 */
@Injectable()
export class Decompressor {
  /** How far below the daemon's priority the decompressor runs (JOB_NICE). */
  private readonly nice: number;

  constructor(@Optional() settings?: Settings) {
    this.nice = settings?.jobs.nice ?? 0;
  }

  async unpack(
    wrapper: Wrapper,
    source: string,
    target: string,
    maxBytes: number,
    signal: AbortSignal,
    track: (exited: Promise<unknown>) => void,
  ): Promise<number> {
    const out = await open(target, 'wx', 0o600);
    let position = 0;
    let pending: Buffer = Buffer.alloc(0);
    const zero = Buffer.alloc(BLOCK);
    const flush = async (data: Buffer) => {
      for (let at = 0; at < data.length; at += BLOCK) {
        const block = data.subarray(at, at + BLOCK);
        if (!(block.length === BLOCK && block.equals(zero)))
          await out.write(block, 0, block.length, position);
        position += block.length;
      }
    };
    let tooBig = false;
    const abort = new AbortController();
    signal.addEventListener('abort', () => abort.abort(), { once: true });
    const child = run(PROGRAMS[wrapper], ['-dc', '--', source], {
      signal: abort.signal,
      nice: this.nice,
      onStdout: async (chunk) => {
        if (tooBig) return;
        pending = Buffer.concat([pending, chunk]);
        const whole = pending.length - (pending.length % BLOCK);
        await flush(pending.subarray(0, whole));
        pending = pending.subarray(whole);
        if (position > maxBytes) {
          tooBig = true;
          abort.abort();
        }
      },
    });
    track(child.catch(() => undefined));
    try {
      try {
        await child;
      } catch (error) {
        if (!tooBig) throw error;
      }
      if (tooBig) {
        throw new ImageRejectedError(
          `the ${wrapper}-compressed image unpacks to more than ${maxBytes} bytes, the size of the volume (rule: fits-volume)`,
          { rule: 'fits-volume' },
        );
      }
      await flush(pending);
      await out.truncate(position);
      await out.sync();
      return position;
    } catch (error) {
      if (error instanceof ImageRejectedError) throw error;
      throw commandError(`${PROGRAMS[wrapper]} -dc`, error);
    } finally {
      await out.close();
    }
  }
}
