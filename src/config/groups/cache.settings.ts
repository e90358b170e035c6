import { IsInt, IsString, Min, MinLength } from 'class-validator';
import { Env } from '../env.decorator';

/** Where downloaded images are kept, and how much of them. */
export class CacheSettings {
  @Env('CACHE_DIR', {
    allowed: 'a directory path',
    doc: 'Directory for downloaded images (tmp/ holds partial downloads).',
  })
  @IsString()
  @MinLength(1)
  dir = './var/cache';

  @Env('CACHE_MAX_BYTES', {
    allowed: 'a byte count, e.g. 53687091200 or 50G',
    doc: 'Bytes the image cache may hold (suffixes K, M, G, T = powers of 1024): the images as downloaded plus the expanded (uncompressed) copies of compressed qcow2 images. Least recently used images are evicted beyond it; an image larger than this is used once and not kept.',
  })
  @IsInt()
  @Min(0)
  maxBytes = 50 * 1024 ** 3;

  @Env('CACHE_MAX_ENTRIES', {
    allowed: 'a non-negative integer',
    doc: 'Images the cache may hold; least recently used ones are evicted beyond it.',
  })
  @IsInt()
  @Min(0)
  maxEntries = 50;
}
