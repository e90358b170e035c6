import { Injectable, Logger } from '@nestjs/common';
import { messageOf } from '../../common/errors';
import { Settings } from '../../config/settings';
import { QemuImg } from '../../convert/qemu-img';
import { LvmCli, type LvInfo } from '../../volumes/lvm-cli';
import { OWNER_TAG } from '../../volumes/lvm.backend';
import type {
  BaseCatalog,
  BaseLease,
  BaseRecord,
  CloneSupport,
  KeepOutcome,
  KeepRequest,
} from '../base-store';
import { chooseBaseEvictions } from './base-layout';
import { sha256Of } from './golden-bases';
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
 * Bases are cache: BASE_MAX_BYTES (the pool data they pin) / BASE_MAX_COUNT, least recently used
 * removed first, never one a clone is being made from; removed with their image. The last use is
 * kept in memory: after a restart the LRU order is the order the bases were made in.
 */
@Injectable()
export class ThinBases implements BaseCatalog {
  private readonly logger = new Logger(ThinBases.name);
  private readonly vg: string;
  private readonly pool: string;
  private readonly bases = new Map<string, BaseRecord>();
  /** Clones being made from each base (by LV name): it is not evicted or removed meanwhile. */
  private readonly leases = new Map<string, number>();
  private readonly making = new Set<string>();

  constructor(
    private readonly settings: Settings,
    private readonly qemuImg: QemuImg,
    private readonly lvm: LvmCli,
  ) {
    this.vg = settings.volumes.lvmVolumeGroup;
    this.pool = settings.volumes.lvmThinPool;
  }

  async support(): Promise<CloneSupport> {
    if (this.settings.bases.cloneFromBase === 'off') return { enabled: false, reason: 'CLONE_FROM_BASE=off' };
    return { enabled: true };
  }

  /** Start-up: partial bases (a crash while one was made) and bases of images no longer cached go. */
  async recover(isCached: (sha256: string) => boolean): Promise<void> {
    const off = this.settings.bases.cloneFromBase === 'off';
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
      this.bases.set(base.name, {
        sha256: base.sha256,
        virtualSize: base.virtualSize,
        path: this.pathOf(lv),
        rawSha256: base.rawSha256,
        allocatedBytes: pinnedBytes(lv),
        createdAt: at,
        lastUsedAt: at,
      });
    }
    await this.evict();
  }

  acquire(sha256: string, virtualSize: number): BaseLease | undefined {
    const name = thinBaseName(sha256, virtualSize);
    const base = this.bases.get(name);
    if (!base) return undefined;
    this.leases.set(name, (this.leases.get(name) ?? 0) + 1);
    base.lastUsedAt = new Date().toISOString();
    let released = false;
    return {
      base,
      release: async (outcome) => {
        if (released) return;
        released = true;
        const left = (this.leases.get(name) ?? 1) - 1;
        if (left > 0) this.leases.set(name, left);
        else this.leases.delete(name);
        if (outcome?.vanished && this.bases.get(name) === base) {
          this.bases.delete(name);
          this.logger.warn({ base: name, msg: 'golden base LV vanished: base forgotten' });
        }
        if (left <= 0) await this.evict();
      },
    };
  }

  async keep(request: KeepRequest, signal: AbortSignal): Promise<KeepOutcome> {
    const support = await this.support();
    if (!support.enabled) return { kept: false, reason: support.reason ?? 'clones are off' };
    const name = thinBaseName(request.sha256, request.virtualSize);
    if (this.bases.has(name)) return { kept: false, reason: 'a base of this image exists already' };
    if (this.making.has(name)) return { kept: false, reason: 'another job is making the base of this image' };
    const { maxBytes, maxCount, poolMaxPercent } = this.settings.bases;
    const lvs = await this.lvm.lvs(this.vg);
    const pool = lvs.find((l) => l.name === this.pool);
    const volume = lvs.find((l) => l.name === request.volumeName);
    if (!pool || !volume)
      return { kept: false, reason: `${this.vg}/${request.volumeName} or its pool is gone` };
    if (lvs.some((l) => l.name === name)) {
      const reason = `an LV ${this.vg}/${name} exists already that this daemon does not hold as a base`;
      return { kept: false, reason };
    }
    const full = poolRoomProblem(pool, poolMaxPercent, `${this.vg}/${this.pool}`);
    if (full) return { kept: false, reason: full };
    const needed = Math.min(pinnedBytes(volume), request.virtualSize);
    if (maxCount === 0 || needed > maxBytes) {
      return {
        kept: false,
        reason: `BASE_MAX_BYTES (${maxBytes}) / BASE_MAX_COUNT (${maxCount}) leave no room for it`,
      };
    }
    this.making.add(name);
    const started = Date.now();
    try {
      const base = await this.make(name, request, signal);
      this.bases.set(name, base);
      await this.evict();
      return { kept: true, base, seconds: (Date.now() - started) / 1000 };
    } catch (error) {
      if (signal.aborted) throw error;
      return { kept: false, reason: messageOf(error) };
    } finally {
      this.making.delete(name);
    }
  }

  list(): (BaseRecord & { cloning: number })[] {
    return [...this.bases.entries()]
      .map(([name, base]) => ({ ...base, cloning: this.leases.get(name) ?? 0 }))
      .sort((a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt));
  }

  get limits() {
    return { maxBytes: this.settings.bases.maxBytes, maxCount: this.settings.bases.maxCount };
  }

  async removeImage(sha256: string): Promise<void> {
    for (const [name, base] of [...this.bases]) {
      if (base.sha256 !== sha256) continue;
      this.bases.delete(name);
      if (await this.removeOrWarn(name)) {
        this.logger.log({ sha256, base: name, msg: 'golden base LV removed with its image' });
      }
    }
  }

  /**
   * Thin snapshot of the fresh volume (tagged partial), cut to the image's virtual size (the
   * volume held nothing past it: a fresh thin LV reads zeros and qemu-img wrote only the image),
   * compared with the image, hashed, made read-only; the tag change that completes it comes last.
   */
  private async make(name: string, request: KeepRequest, signal: AbortSignal): Promise<BaseRecord> {
    const madeAt = Date.now();
    const tags = [OWNER_TAG, ...partialTags(request.sha256, request.virtualSize, madeAt)];
    await this.lvm.snapshotThin(this.vg, request.volumeName, name, tags);
    this.logger.log({ base: name, volume: request.volumeName, msg: 'making a golden base LV' });
    try {
      return await this.verify(name, request, signal, madeAt);
    } catch (error) {
      // Only the LV this call made (a failed lvcreate may mean the name was taken: not ours to remove).
      await this.removeLv(name).catch((removal: unknown) =>
        this.logger.warn({ base: name, error: messageOf(removal), msg: 'could not remove a failed base' }),
      );
      throw error;
    }
  }

  /** Cut to size, compared, hashed, made read-only, completed. */
  private async verify(
    name: string,
    request: KeepRequest,
    signal: AbortSignal,
    madeAt: number,
  ): Promise<BaseRecord> {
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
    const at = new Date(madeAt).toISOString();
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

  /** Least recently used first, beyond the limits; waits (stops) at a base a clone is being made from. */
  private async evict(): Promise<void> {
    const victims = chooseBaseEvictions(
      [...this.bases].map(([key, base]) => ({ key, size: base.allocatedBytes, lastUsedAt: base.lastUsedAt })),
      this.limits,
      (key) => (this.leases.get(key) ?? 0) > 0,
    );
    for (const { key, size, lastUsedAt } of victims) {
      this.bases.delete(key);
      if (await this.removeOrWarn(key)) {
        this.logger.log({ base: key, size, last_used_at: lastUsedAt, msg: 'golden base eviction' });
      }
    }
  }

  /**
   * A base no longer held that lvremove refuses (something outside the daemon has it open) is
   * not cloned again until the next start, which removes it (image gone) or takes it up again:
   * said, not failed on.
   */
  private async removeOrWarn(name: string): Promise<boolean> {
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
