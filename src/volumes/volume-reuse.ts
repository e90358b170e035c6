import { VolumeInUseError, VolumeSizeMismatchError } from '../common/errors';
import { isReusableSize, type ExistingVolume, type VolumeBackend } from './volume-backend';

/**
 * Whether an existing volume may be overwritten for a request of `requestedBytes`: never while
 * something holds it open (a running VM), and only within ±5 % of the requested size. Throws the
 * refusal the client sees (409).
 */
export function checkReusable(existing: ExistingVolume, requestedBytes: number): void {
  if (existing.inUseBy) throw new VolumeInUseError(existing.name, existing.inUseBy);
  if (!isReusableSize(existing.sizeBytes, requestedBytes)) {
    throw new VolumeSizeMismatchError(existing.name, existing.sizeBytes, requestedBytes);
  }
}

/**
 * The volume of this name when it exists and may be reused, undefined when there is none; throws
 * when one exists that may not be. Asked at submit (so the client hears at once) and again by the
 * volume stage, since the volume may have changed while the job waited and downloaded.
 */
export async function findReusable(
  volumes: VolumeBackend,
  name: string,
  requestedBytes: number,
): Promise<ExistingVolume | undefined> {
  const existing = await volumes.find(name);
  if (existing) checkReusable(existing, requestedBytes);
  return existing;
}
