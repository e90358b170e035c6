import { constants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { VolumeUnusableError } from '../common/errors';

/**
 * device-mapper's name for an LV: `<vg>-<lv>`, with each '-' inside either name doubled so the
 * separator stays unambiguous (vg `data-vg`, lv `vm-1` → `data--vg-vm--1`).
 */
export function dmName(vg: string, lv: string): string {
  return `${vg.replace(/-/g, '--')}-${lv.replace(/-/g, '--')}`;
}

/** Linux dev_t → "major:minor", as /sys/dev/block names devices. */
export function majorMinor(rdev: number): string {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev % 2 ** 32;
  const major = ((low >>> 8) & 0xfff) | (high & 0xfffff000);
  const minor = (low & 0xff) | ((low >>> 12) & 0xfff00) | ((high & 0xfff) << 20);
  return `${major >>> 0}:${minor >>> 0}`;
}

/**
 * Opens an LV for writing. /dev/<vg>/<lv> is a symlink by design (udev points it at /dev/dm-N),
 * so the open follows it; what is checked instead is the descriptor it yields: a block device
 * whose device-mapper name (/sys/dev/block/<major:minor>/dm/name) is this LV's. A link pointed
 * elsewhere (a disk, a partition, another LV) is refused before qemu-img writes a byte.
 */
export async function openLvDevice(path: string, vg: string, lv: string, sys = '/sys'): Promise<FileHandle> {
  const handle = await open(path, constants.O_WRONLY | constants.O_NOCTTY);
  try {
    const stats = await handle.stat();
    const expected = dmName(vg, lv);
    const name = stats.isBlockDevice()
      ? (await readFile(`${sys}/dev/block/${majorMinor(stats.rdev)}/dm/name`, 'utf8').catch(() => '')).trim()
      : '';
    if (name !== expected) {
      throw new VolumeUnusableError(
        path,
        `${path} does not lead to the device of LV ${vg}/${lv} (device-mapper name ${JSON.stringify(name)}, expected ` +
          `${JSON.stringify(expected)}); nothing was written: check the link with ls -l ${path}`,
      );
    }
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}
