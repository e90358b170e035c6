import { rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '@nestjs/common';
import type { JobScope } from '../common/job-scope';
import { fsyncPath } from '../common/fsync';
import { Decompressor, Wrapper } from '../convert/decompressor';
import { CacheLayout, exists } from './cache-layout';
import type { LocalImage } from './image-store';

/**
 * The unpacked form of a compressed image (gz, xz, zst, bz2), made once and kept next to its
 * digest (`<hex>.unpacked`, sparse) so later provisions skip the decompression. Two jobs that
 * need it at once share one decompression. It goes with its image (eviction, deletion, or the
 * last reader of a used-once image).
 */
export class UnpackedCopies {
  /** Decompressions running, by target path. */
  private readonly unpacking = new Map<string, Promise<string>>();

  constructor(
    private readonly decompressor: Decompressor,
    private readonly layout: CacheLayout,
    private readonly logger: Logger,
  ) {}

  async of(
    image: LocalImage,
    wrapper: Wrapper,
    maxBytes: number,
    job: JobScope,
    signal: AbortSignal,
  ): Promise<string> {
    const target = this.layout.unpackedOf(image.path);
    if (await exists(target)) return target;
    let running = this.unpacking.get(target);
    if (!running) {
      const partial = this.layout.unpacking(image.sha256);
      running = this.decompressor
        .unpack(wrapper, image.path, partial, maxBytes, signal, (exited) => job.track(exited))
        .then(async (bytes) => {
          await rename(partial, target);
          await fsyncPath(dirname(target));
          this.logger.log({
            sha256: image.sha256,
            wrapper,
            bytes,
            msg: 'unpacked compressed image into the cache',
          });
          return target;
        })
        .catch(async (error) => {
          await rm(partial, { force: true });
          throw error;
        })
        .finally(() => this.unpacking.delete(target));
      this.unpacking.set(target, running);
    }
    return running;
  }
}
