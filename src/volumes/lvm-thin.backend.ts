import { basename } from 'node:path';
import { Injectable } from '@nestjs/common';
import { InsufficientSpaceError, StorageMissingError } from '../common/errors';
import { Settings } from '../config/settings';
import { BlockDevice } from './block-device';
import { LvmCli, type LvInfo } from './lvm-cli';
import { LvmBackend, OWNER_TAG } from './lvm.backend';
import { WritableVolume } from './volume-backend';

/**
 * Thin LVs in LVM_THIN_POOL. A fresh thin LV reads as zeros, so qemu-img skips writing zeros
 * (--target-is-zero) and the pool grows by the image's data only. A volume on an image with a
 * golden base (cache/bases/thin-base-storage.ts) is a thin snapshot of that base: no byte is written.
 */
@Injectable()
export class LvmThinBackend extends LvmBackend {
  override readonly kind = 'lvm-thin';
  private readonly pool: string;

  constructor(settings: Settings, lvm: LvmCli, blocks: BlockDevice) {
    super(settings, lvm, blocks);
    this.pool = settings.volumes.lvmThinPool;
  }

  override async verify(): Promise<void> {
    await super.verify();
    const pool = (await this.lvm.lvs(this.vg)).find((l) => l.name === this.pool);
    if (!pool || pool.attr[0] !== 't') {
      throw new Error(
        `thin pool "${this.vg}/${this.pool}" (LVM_THIN_POOL) does not exist; create it with ` +
          `lvcreate --type thin-pool -L <size> -n ${this.pool} ${this.vg}`,
      );
    }
  }

  override async create(name: string, sizeBytes: number): Promise<WritableVolume> {
    this.checkRoom(await this.lvm.lvs(this.vg), sizeBytes);
    await this.lvm.createThin(this.vg, this.pool, name, sizeBytes, OWNER_TAG);
    return this.created(name, true);
  }

  /**
   * A thin snapshot of the base LV (read-only; the snapshot is writable and independent of it:
   * removing the base later leaves it whole), with the daemon's owner tag like any volume it
   * creates, grown to `sizeBytes` (a thin LV reads zeros in the grown range). Same room check as
   * `create`: the clone may come to use all of its size.
   */
  async cloneFrom(name: string, sizeBytes: number, basePath: string): Promise<WritableVolume> {
    const lvs = await this.lvm.lvs(this.vg);
    const baseName = basename(basePath);
    const base = lvs.find((l) => l.name === baseName);
    if (!base) {
      throw Object.assign(new Error(`golden base LV ${this.vg}/${baseName} is gone`), { code: 'ENOENT' });
    }
    if (base.sizeBytes > sizeBytes) {
      throw new Error(
        `golden base LV ${this.vg}/${baseName} (${base.sizeBytes} bytes) is larger than the volume`,
      );
    }
    this.checkRoom(lvs, sizeBytes);
    await this.lvm.snapshotThin(this.vg, baseName, name, [OWNER_TAG]);
    if (sizeBytes > base.sizeBytes) await this.lvm.extend(this.vg, name, sizeBytes);
    // Not known to read zeros: it holds the base's bytes.
    return { ...(await this.created(name, false)), clonedFrom: basePath };
  }

  /**
   * A clone reads zeros past the image already (its base was compared with the image up to the
   * base's end, and the range lvextend added is unmapped): writing zeros there would only allocate
   * the whole tail in the pool. Other volumes as on thick LVs.
   */
  override async clearTail(volume: WritableVolume, imageBytes: number): Promise<void> {
    if (volume.clonedFrom) return;
    await super.clearTail(volume, imageBytes);
  }

  /** Refuses over-provisioning: a full thin pool stops every thin LV in it, not just this one. */
  private checkRoom(lvs: LvInfo[], sizeBytes: number): void {
    const pool = lvs.find((l) => l.name === this.pool);
    if (!pool) throw new StorageMissingError('thin pool', `${this.vg}/${this.pool}`, 'LVM_THIN_POOL');
    const free = Math.floor(pool.sizeBytes * (1 - (pool.dataPercent ?? 0) / 100));
    if (free < sizeBytes)
      throw new InsufficientSpaceError(`thin pool ${this.vg}/${this.pool}`, sizeBytes, free);
  }
}
