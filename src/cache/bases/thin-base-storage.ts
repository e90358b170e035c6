import { Logger } from '@nestjs/common';
import { messageOf } from '../../common/errors';
import { Settings } from '../../config/settings';
import { QemuImg } from '../../convert/qemu-img';
import { LvmCli, type LvInfo } from '../../volumes/lvm-cli';
import { OWNER_TAG } from '../../volumes/lvm.backend';
import type { BaseRecord, CloneSupport, KeepRequest } from '../base-store';
import type { BaseStorage } from './base-storage';
import { sha256Of } from './raw-digest';
import {
  completeTags,
  parseThinBase,
  partialTags,
  pinnedBytes,
  poolRoomProblem,
  thinBaseName,
} from './thin-base-rules';

/**
 * Golden bases of the `lvm-thin` backend: per image and virtual size a read-only thin LV in
 * LVM_THIN_POOL (`lvp-base-<hex16>`, tags: thin-base-rules.ts). The first job that converts an
 * image into a fresh thin LV takes a thin snapshot of it (no byte copied), cuts it to the image's
 * size, compares it with the image, hashes it, makes it read-only and only then marks it complete;
 * a new volume on that image is a thin snapshot of the base (LvmThinBackend.cloneFrom).
 * What a base is lives in its tags; its last use is kept in memory only (recordUse does nothing):
 * after a restart the LRU order is the order the bases were made in. The catalog
 * (base-catalog.ts) decides which bases there are and when one goes.
 */
export class ThinBaseStorage implements BaseStorage {
  // The context the lvm-thin backend's base lines have always had.
  readonly logger = new Logger('ThinBases');
  private readonly vg: string;
  private readonly pool: string;
  /** When each base being made was copied (its tags say so too): its creation time once complete. */
  private readonly madeAt = new Map<string, number>();

  constructor(
    private readonly settings: Settings,
    private readonly qemuImg: QemuImg,
    private readonly lvm: LvmCli,
  ) {
    this.vg = settings.volumes.lvmVolumeGroup;
    this.pool = settings.volumes.lvmThinPool;
  }

  async support(): Promise<CloneSupport> {
    return { enabled: true };
  }

  keyOf(sha256: string, virtualSize: number): string {
    return thinBaseName(sha256, virtualSize);
  }

  /** Partial bases (a crash while one was made) and bases of images no longer cached go. */
  async recover(isCached: (sha256: string) => boolean, off: boolean): Promise<Map<string, BaseRecord>> {
    const bases = new Map<string, BaseRecord>();
    for (const lv of await this.lvm.lvs(this.vg)) {
      const base = parseThinBase(lv, OWNER_TAG);
      if (!base) continue;
      const why =
        base.state === 'partial'
          ? `half-made (${base.why})`
          : off
            ? 'CLONE_FROM_BASE=off'
            : isCached(base.sha256)
              ? undefined
              : 'its image is no longer cached';
      if (why) {
        await this.lvm.remove(this.vg, lv.name);
        this.logger.warn({ base: lv.name, msg: `removed golden base LV: ${why}` });
        continue;
      }
      if (base.state !== 'complete') continue;
      const at = new Date(base.madeAt).toISOString();
      bases.set(base.name, {
        sha256: base.sha256,
        virtualSize: base.virtualSize,
        path: this.pathOf(lv),
        rawSha256: base.rawSha256,
        allocatedBytes: pinnedBytes(lv),
        createdAt: at,
        lastUsedAt: at,
      });
    }
    return bases;
  }

  /** The volume and its pool must be there, the name free, the pool below BASE_POOL_MAX_PERCENT. */
  async room(name: string, request: KeepRequest): Promise<{ bytes: number } | { reason: string }> {
    const lvs = await this.lvm.lvs(this.vg);
    const pool = lvs.find((l) => l.name === this.pool);
    const volume = lvs.find((l) => l.name === request.volumeName);
    if (!pool || !volume) return { reason: `${this.vg}/${request.volumeName} or its pool is gone` };
    if (lvs.some((l) => l.name === name)) {
      return { reason: `an LV ${this.vg}/${name} exists already that this daemon does not hold as a base` };
    }
    const full = poolRoomProblem(pool, this.settings.bases.poolMaxPercent, `${this.vg}/${this.pool}`);
    if (full) return { reason: full };
    return { bytes: Math.min(pinnedBytes(volume), request.virtualSize) };
  }

  /**
   * A thin snapshot of the fresh volume, tagged partial (no byte copied). Its tags carry when it
   * was made: what `verify` records as the base's creation.
   */
  async copy(name: string, request: KeepRequest): Promise<{ path: string }> {
    const madeAt = Date.now();
    const tags = [OWNER_TAG, ...partialTags(request.sha256, request.virtualSize, madeAt)];
    // A failed lvcreate may mean the name was taken: nothing of ours to remove.
    await this.lvm.snapshotThin(this.vg, request.volumeName, name, tags);
    this.madeAt.set(name, madeAt);
    this.logger.log({
      ...request.logFields,
      base: name,
      volume: request.volumeName,
      msg: 'making a golden base LV',
    });
    return { path: `/dev/${this.vg}/${name}` };
  }

  /**
   * The snapshot cut to the image's virtual size (the volume held nothing past it: a fresh thin LV
   * reads zeros and qemu-img wrote only the image), compared with the image, hashed, made
   * read-only; the tag change that completes it comes last. On failure the snapshot goes.
   */
  async verify(name: string, request: KeepRequest, signal: AbortSignal): Promise<BaseRecord> {
    try {
      return await this.complete(name, request, signal);
    } catch (error) {
      await this.removeLv(name).catch((removal: unknown) =>
        this.logger.warn({ base: name, error: messageOf(removal), msg: 'could not remove a failed base' }),
      );
      throw error;
    } finally {
      this.madeAt.delete(name);
    }
  }

  async recordUse(): Promise<void> {}

  /** Nothing is left to remove: the base is only forgotten. */
  async vanished(name: string): Promise<void> {
    this.logger.warn({ base: name, msg: 'golden base LV vanished: base forgotten' });
  }

  /**
   * A base no longer held that lvremove refuses (something outside the daemon has it open) is
   * not cloned again until the next start, which removes it (image gone) or takes it up again:
   * said, not failed on.
   */
  async remove(name: string): Promise<boolean> {
    try {
      await this.removeLv(name);
      return true;
    } catch (error) {
      this.logger.warn({
        base: name,
        error: messageOf(error),
        msg: 'could not remove a golden base LV (is it open? see lvs -o+lv_attr); the next start removes it',
      });
      return false;
    }
  }

  async removeWithImage(name: string, base: BaseRecord): Promise<void> {
    if (await this.remove(name)) {
      this.logger.log({ sha256: base.sha256, base: name, msg: 'golden base LV removed with its image' });
    }
  }

  async emptied(): Promise<void> {}

  /** Cut to size, compared, hashed, made read-only, completed. */
  private async complete(name: string, request: KeepRequest, signal: AbortSignal): Promise<BaseRecord> {
    let lv = await this.lvOf(name);
    if (lv.sizeBytes > request.virtualSize) {
      // lvm rounds up to whole extents: the base may stay a little larger, zeros past the image.
      await this.lvm.reduce(this.vg, name, request.virtualSize);
      lv = await this.lvOf(name);
    }
    const path = this.pathOf(lv);
    const options = {
      signal,
      timeoutMs: this.settings.jobs.timeoutSeconds * 1000,
      limits: { cpuSeconds: this.settings.jobs.timeoutSeconds },
    };
    if (!(await this.qemuImg.sameContent(path, request.imagePath, request.format, options))) {
      throw new Error(
        `the snapshot of ${this.vg}/${request.volumeName} does not read as image ${request.sha256}`,
      );
    }
    const rawSha256 = await sha256Of(path, signal, request.virtualSize);
    await this.lvm.setReadOnly(this.vg, name);
    await this.lvm.retag(this.vg, name, completeTags(rawSha256));
    const at = new Date(this.madeAt.get(name) ?? Date.now()).toISOString();
    return {
      sha256: request.sha256,
      virtualSize: request.virtualSize,
      path,
      rawSha256,
      allocatedBytes: pinnedBytes(lv),
      createdAt: at,
      lastUsedAt: at,
    };
  }

  /** Removes a base LV if it is there (and ours: parseThinBase checks the owner tag). */
  private async removeLv(name: string): Promise<void> {
    const lv = (await this.lvm.lvs(this.vg)).find((l) => l.name === name);
    if (lv && parseThinBase(lv, OWNER_TAG)) await this.lvm.remove(this.vg, name);
  }

  private async lvOf(name: string): Promise<LvInfo> {
    const lv = (await this.lvm.lvs(this.vg)).find((l) => l.name === name);
    if (!lv) throw new Error(`${this.vg}/${name} vanished while it was being made`);
    return lv;
  }

  private pathOf(lv: LvInfo): string {
    return lv.path || `/dev/${this.vg}/${lv.name}`;
  }
}
