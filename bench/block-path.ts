import { mkdir, rm, symlink } from 'node:fs/promises';
import { lastValueFrom } from 'rxjs';
import { Settings } from '../src/config/settings';
import { QemuImg } from '../src/convert/qemu-img';
import { BlockDevice } from '../src/volumes/block-device';
import type { LvInfo, LvmCli, VgInfo } from '../src/volumes/lvm-cli';
import { LvmBackend, OWNER_TAG } from '../src/volumes/lvm.backend';
import { LvmThinBackend } from '../src/volumes/lvm-thin.backend';
import type { WritableVolume } from '../src/volumes/volume-backend';

/**
 * The daemon's block-device write path, driven directly. This kernel has no device-mapper, so
 * no LV can exist here; the real LvmBackend / LvmThinBackend run with an lvm CLI stand-in that
 * "creates" an LV by handing out a prepared loop device. Everything after lvcreate is the
 * product's code: the backend decides cache mode and zero handling, QemuImg.convert runs
 * qemu-img with the daemon's flags, clearTail zeroes what lies beyond the image.
 */
export type LvKind = 'thin' | 'thick';

/** A volume group name no real one on a bench machine is likely to have. */
const VG = 'lvp-bench-vg';

class LoopAsLv implements Pick<LvmCli, 'vg' | 'lvs' | 'createThick' | 'createThin'> {
  constructor(
    private readonly device: string,
    private readonly sizeBytes: number,
  ) {}

  async vg(name: string): Promise<VgInfo> {
    return { name, sizeBytes: 2 ** 50, freeBytes: 2 ** 50 };
  }

  async lvs(): Promise<LvInfo[]> {
    return [
      { name: 'pool', sizeBytes: 2 ** 50, attr: 'twi-aotz--', tags: [], path: '', dataPercent: 0 },
      { name: 'bench', sizeBytes: this.sizeBytes, attr: 'Vwi-a-tz--', tags: [OWNER_TAG], path: this.device },
    ];
  }

  async createThick(): Promise<void> {}
  async createThin(): Promise<void> {}
}

export async function provisionBlock(
  kind: LvKind,
  device: string,
  sizeBytes: number,
  image: { path: string; format: string; virtualBytes: number },
): Promise<WritableVolume> {
  const settings = new Settings();
  Object.assign(settings.volumes, { lvmVolumeGroup: VG, lvmThinPool: 'pool' });
  const lvm = new LoopAsLv(device, sizeBytes) as unknown as LvmCli;
  const blocks = new BlockDevice();
  const backend =
    kind === 'thin' ? new LvmThinBackend(settings, lvm, blocks) : new LvmBackend(settings, lvm, blocks);
  // The backend finds a new LV at /dev/<vg>/<lv>, as udev would have linked it, and reads its size
  // from sysfs through that link: here the link leads to the loop device.
  await mkdir(`/dev/${VG}`, { recursive: true });
  await rm(`/dev/${VG}/bench`, { force: true });
  await symlink(device, `/dev/${VG}/bench`);
  const created = await backend
    .create('bench', sizeBytes)
    .finally(() => rm(`/dev/${VG}`, { recursive: true, force: true }));
  const volume = { ...created, path: device }; // where the link led
  await lastValueFrom(
    new QemuImg().convert(image.path, volume.path, {
      sourceFormat: image.format,
      targetCache: volume.cacheMode,
      targetIsZero: volume.readsAsZeros,
    }),
    { defaultValue: 0 },
  );
  await backend.clearTail(volume, image.virtualBytes);
  return volume;
}
