import { IsIn, IsInt, Max, Min } from 'class-validator';
import { Env } from '../env.decorator';

export const CLONE_MODES = ['auto', 'off'] as const;
export type CloneMode = (typeof CLONE_MODES)[number];

/**
 * Golden bases: one copy of each image kept beside the volumes and cloned for new volumes (file:
 * a raw file, reflink clones; lvm-thin: a read-only thin LV, thin-snapshot clones).
 */
export class BaseSettings {
  @Env('CLONE_FROM_BASE', {
    allowed: CLONE_MODES.join(', '),
    doc: '`auto`: the first job that converts an image into a fresh volume keeps a base of it, and a new volume on that image is a clone of the base instead of a conversion. `file` backend: a raw file in VOLUME_DIR/.lvp-bases, reflink clones, where the filesystem supports reflinks (XFS with reflink=1, btrfs; on ext4 jobs keep converting and say so). `lvm-thin`: a read-only thin LV `lvp-base-<hex16>` in LVM_THIN_POOL, thin-snapshot clones. `lvm` (thick) always converts: it has no copy-on-write that leaves an independent volume. `off`: always convert, keep no base.',
  })
  @IsIn(CLONE_MODES)
  cloneFromBase: CloneMode = 'auto';

  @Env('BASE_MAX_BYTES', {
    allowed: 'a byte count, e.g. 107374182400 or 100G',
    doc: 'Bytes the bases may occupy (file: their allocated blocks; lvm-thin: the thin-pool data they pin; suffixes K, M, G, T = powers of 1024). Least recently used bases are removed beyond it, never one a clone is being made from; 0 keeps no base.',
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

  @Env('BASE_POOL_MAX_PERCENT', {
    allowed: 'an integer 1-100',
    doc: "`lvm-thin`: no base is kept while the thin pool's data or metadata use is at or above this percentage (a base pins the image's blocks, and a full pool stops every thin LV in it); the job still completes by converting and its log says why.",
  })
  @IsInt()
  @Min(1)
  @Max(100)
  poolMaxPercent = 80;
}
