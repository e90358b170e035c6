/** A volume as found on the host. */
export interface ExistingVolume {
  name: string;
  /** Path qemu-img writes to: a block device or a raw file. */
  path: string;
  sizeBytes: number;
  /** Set when something holds the volume open (a running VM): it must not be written. */
  inUseBy?: string;
}

/** What a backend knows about writing into a volume it returned. */
export interface WritableVolume extends ExistingVolume {
  /** True when the whole volume reads as zeros (fresh sparse file, fresh thin LV). */
  readsAsZeros: boolean;
  /** qemu-img destination cache mode that is both fast and durable for this kind of target. */
  cacheMode: 'none' | 'writeback';
}

/**
 * The port every volume backend implements (file now; lvm and lvm-thin next).
 * Names are validated at the edge (volume-name.ts) before they reach a backend.
 */
export interface VolumeBackend {
  readonly kind: string;
  /** Where a volume of this name lives (whether or not it exists). */
  pathFor(name: string): string;
  find(name: string): Promise<ExistingVolume | undefined>;
  /** Creates a new volume; fails if one of this name appeared meanwhile. */
  create(name: string, sizeBytes: number): Promise<WritableVolume>;
  /** Prepares an existing volume for overwriting. */
  reuse(volume: ExistingVolume): Promise<WritableVolume>;
  /** Makes whatever lies beyond `imageBytes` read as zeros (the previous owner's data must not survive). */
  clearTail(volume: WritableVolume, imageBytes: number): Promise<void>;
  /** Removes a volume this daemon created; a missing volume is not an error. */
  remove(name: string): Promise<void>;
}

export const VOLUME_BACKEND = Symbol('VolumeBackend');

/** The original service's rule: an existing volume within ±5 % of the requested size is reused. */
export function isReusableSize(existingBytes: number, requestedBytes: number): boolean {
  return Math.abs(existingBytes - requestedBytes) <= requestedBytes * 0.05;
}

export const GIB = 1024 ** 3;
