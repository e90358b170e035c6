import { IsIn, IsInt, IsOptional, IsString, Matches, Min, MinLength } from 'class-validator';
import { Env } from '../env.decorator';

export const VOLUME_BACKENDS = ['file', 'lvm', 'lvm-thin'] as const;
export type VolumeBackendKind = (typeof VOLUME_BACKENDS)[number];

/** LVM's rules for a VG name: letters, digits and + _ . -, not starting with '-', not '.' or '..'. */
export const LVM_NAME_PATTERN = /^(?!-)(?!\.{1,2}$)[A-Za-z0-9+_.-]{1,127}$/;

/** Where volumes are made, and how large a request may ask for. */
export class VolumeSettings {
  @Env('VOLUME_BACKEND', {
    allowed: VOLUME_BACKENDS.join(', '),
    doc: 'Where volumes live: `file` = VOLUME_DIR/<name>.raw (a libvirt dir pool); `lvm` = thick LVs in LVM_VOLUME_GROUP; `lvm-thin` = thin LVs in LVM_THIN_POOL.',
  })
  @IsIn(VOLUME_BACKENDS)
  backend: VolumeBackendKind = 'file';

  @Env('VOLUME_DIR', { allowed: 'a directory path', doc: 'Directory of the `file` backend.' })
  @IsString()
  @MinLength(1)
  dir = './var/volumes';

  @Env('LVM_VOLUME_GROUP', {
    allowed: 'an LVM VG name',
    doc: 'Volume group of the `lvm` and `lvm-thin` backends.',
  })
  @IsString()
  @Matches(LVM_NAME_PATTERN, { message: 'must be a valid LVM volume group name (letters, digits, + _ . -)' })
  lvmVolumeGroup = 'data';

  @Env('LVM_THIN_POOL', {
    allowed: 'an LVM LV name',
    doc: 'Thin pool of the `lvm-thin` backend (in LVM_VOLUME_GROUP). Volumes larger than its free data space are refused.',
  })
  @IsString()
  @Matches(LVM_NAME_PATTERN, { message: 'must be a valid LVM name (letters, digits, + _ . -)' })
  lvmThinPool = 'pool';

  @Env('LIBVIRT_POOL', {
    allowed: 'a libvirt pool name',
    doc: 'libvirt storage pool to refresh (`virsh pool-refresh`) after a volume is created or written, so libvirt sees it at once. A failed refresh is logged, not fatal. A `logical` pool lists thick LVs only: libvirt 9 skips LVs whose `lvs` devices field is empty, as thin LVs (lvm-thin) have it, refresh or not.',
  })
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9_.:+-]{1,128}$/, { message: 'must be a libvirt pool name' })
  libvirtPool?: string;

  // A bound on requests, so that a typo like 50000000 is refused instead of tried.
  @Env('MAX_VOLUME_SIZE_GB', {
    allowed: 'a positive integer',
    doc: 'Largest volume_size_gb a request may ask for (GiB).',
  })
  @IsInt()
  @Min(1)
  maxSizeGb = 65536;
}
