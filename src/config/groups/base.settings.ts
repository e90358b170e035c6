import { IsIn, IsInt, Min } from 'class-validator';
import { Env } from '../env.decorator';

export const CLONE_MODES = ['auto', 'off'] as const;
export type CloneMode = (typeof CLONE_MODES)[number];

/** Golden bases: one raw copy of each image kept beside the file volumes, cloned (reflink) for new volumes. */
export class BaseSettings {
  @Env('CLONE_FROM_BASE', {
    allowed: CLONE_MODES.join(', '),
    doc: '`auto`: on a `file` backend whose VOLUME_DIR filesystem supports reflinks (XFS with reflink=1, btrfs), the first job that converts an image keeps a base copy of it (VOLUME_DIR/.lvp-bases), and a new volume on that image is a reflink clone of the base instead of a conversion; where the filesystem has no reflinks (ext4) jobs keep converting and say so. `off`: always convert, keep no base.',
  })
  @IsIn(CLONE_MODES)
  cloneFromBase: CloneMode = 'auto';

  @Env('BASE_MAX_BYTES', {
    allowed: 'a byte count, e.g. 107374182400 or 100G',
    doc: 'Bytes the bases may occupy (their allocated blocks; suffixes K, M, G, T = powers of 1024). Least recently used bases are removed beyond it, never one a clone is being made from; 0 keeps no base.',
  })
  @IsInt()
  @Min(0)
  maxBytes = 100 * 1024 ** 3;

  @Env('BASE_MAX_COUNT', {
    allowed: 'a non-negative integer',
    doc: 'Bases that may be kept; least recently used ones are removed beyond it (0 keeps none).',
  })
  @IsInt()
  @Min(0)
  maxCount = 20;
}
