import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { NO_FOLLOW_WRITE } from './safe-open';

/**
 * Whether a file can be opened with O_DIRECT (tmpfs and some network filesystems refuse with
 * EINVAL). qemu-img `-t none` needs it; where it is refused the volume is written with
 * `-t writeback`, which ends with an fdatasync just the same.
 */
export async function acceptsDirectIo(path: string): Promise<boolean> {
  try {
    // Never through a link, never hanging on a fifo (safe-open.ts).
    const handle = await open(path, NO_FOLLOW_WRITE | constants.O_DIRECT);
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EINVAL') return false;
    throw error;
  }
}
