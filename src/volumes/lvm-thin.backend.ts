import { Injectable } from '@nestjs/common';
import { InsufficientSpaceError, StorageMissingError } from '../common/errors';
import { Settings } from '../config/settings';
import { BlockDevice } from './block-device';
import { LvmCli } from './lvm-cli';
import { LvmBackend, OWNER_TAG } from './lvm.backend';
import { WritableVolume } from './volume-backend';

/**
 * Thin LVs in LVM_THIN_POOL. A fresh thin LV reads as zeros, so qemu-img skips writing zeros
 * (--target-is-zero) and the pool grows by the image's data only.
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
    const pool = (await this.lvm.lvs(this.vg)).find((l) => l.name === this.pool);
    if (!pool) throw new StorageMissingError('thin pool', `${this.vg}/${this.pool}`, 'LVM_THIN_POOL');
    const free = Math.floor(pool.sizeBytes * (1 - (pool.dataPercent ?? 0) / 100));
    // Refuse over-provisioning: a full thin pool stops every thin LV in it, not just this one.
    if (free < sizeBytes)
      throw new InsufficientSpaceError(`thin pool ${this.vg}/${this.pool}`, sizeBytes, free);
    await this.lvm.createThin(this.vg, this.pool, name, sizeBytes, OWNER_TAG);
    return this.created(name, true);
  }
}
