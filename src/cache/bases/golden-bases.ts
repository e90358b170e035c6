import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rename, rm, rmdir, stat, truncate, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Injectable, Logger } from '@nestjs/common';
import { messageOf } from '../../common/errors';
import { fsyncPath } from '../../common/fsync';
import { preparePrivateDir } from '../../common/private-dir';
import { Settings } from '../../config/settings';
import { QemuImg } from '../../convert/qemu-img';
import { ReflinkProbe, reflinkCopy, sweepProbeFiles } from '../../volumes/reflink';
import type {
  BaseCatalog,
  BaseLease,
  BaseRecord,
  CloneSupport,
  KeepOutcome,
  KeepRequest,
} from '../base-store';
import { BaseLayout, chooseBaseEvictions, sweepBases } from './base-layout';

export type { BaseRecord } from '../base-store';

/**
 * Golden bases of the `file` backend (layout: base-layout.ts): made from the first fresh volume
 * an image is converted into, verified against the image, then reflink-cloned for new volumes.
 * Bases are cache: BASE_MAX_BYTES / BASE_MAX_COUNT, least recently used removed first, never one
 * a clone is being made from (it goes when the clone is done); removed with their image.
 */
@Injectable()
export class GoldenBases implements BaseCatalog {
  private readonly logger = new Logger(GoldenBases.name);
  readonly layout: BaseLayout;
  private readonly probe = new ReflinkProbe();
  private readonly bases = new Map<string, BaseRecord>();
  /** Clones being made from each base: it is not evicted or removed meanwhile. */
  private readonly leases = new Map<string, number>();
  private readonly making = new Set<string>();

  constructor(
    private readonly settings: Settings,
    private readonly qemuImg: QemuImg,
  ) {
    this.layout = new BaseLayout(settings.volumes.dir);
  }

  async support(): Promise<CloneSupport> {
    if (this.settings.bases.cloneFromBase === 'off') return { enabled: false, reason: 'CLONE_FROM_BASE=off' };
    const backend = this.settings.volumes.backend;
    if (backend !== 'file') {
      // lvm-thin has its own store (ThinBases); thick LVs have no copy-on-write that leaves an
      // independent volume (an old-style LVM snapshot stays tied to its origin): they convert.
      return { enabled: false, reason: `the ${backend} backend has no golden bases: it converts` };
    }
    const { supported, reason } = await this.probe.of(this.settings.volumes.dir);
    return supported ? { enabled: true } : { enabled: false, reason };
  }

  /**
   * Start-up: half-made bases, bases without a record and bases of images no longer cached are
   * removed; the complete ones are known again. Runs after the image index is recovered.
   */
  async recover(isCached: (sha256: string) => boolean): Promise<void> {
    if (this.settings.volumes.backend === 'file') {
      const stale = await sweepProbeFiles(resolve(this.settings.volumes.dir));
      if (stale.length > 0)
        this.logger.warn({ files: stale, msg: 'removed reflink probe files a crash left' });
    }
    const names = await readdir(this.layout.dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!names) return;
    preparePrivateDir(this.layout.dir, 'the golden bases directory');
    // CLONE_FROM_BASE=off: no base is used, so none is kept.
    const off = this.settings.bases.cloneFromBase === 'off';
    const { keep, remove } = sweepBases(names, (sha256) => !off && isCached(sha256));
    for (const name of remove) await rm(`${this.layout.dir}/${name}`, { force: true, recursive: true });
    if (remove.length > 0) {
      this.logger.warn({
        files: remove,
        msg: `removed ${remove.length} half-made or orphaned golden base file(s)`,
      });
    }
    for (const key of keep) {
      this.bases.set(key, JSON.parse(await readFile(this.layout.record(key), 'utf8')) as BaseRecord);
    }
    await this.removeDirIfEmpty();
    await this.evict();
  }

  acquire(sha256: string, virtualSize: number): BaseLease | undefined {
    const key = BaseLayout.key(sha256, virtualSize);
    const base = this.bases.get(key);
    if (!base) return undefined;
    this.leases.set(key, (this.leases.get(key) ?? 0) + 1);
    // Its use is when the clone starts: a base made meanwhile is newer, and goes after it.
    base.lastUsedAt = new Date().toISOString();
    let released = false;
    return {
      base,
      release: async (outcome) => {
        if (released) return;
        released = true;
        const left = (this.leases.get(key) ?? 1) - 1;
        if (left > 0) this.leases.set(key, left);
        else this.leases.delete(key);
        if (outcome?.vanished && this.bases.get(key) === base) {
          this.bases.delete(key);
          await this.removeFiles(key);
          this.logger.warn({ base: key, msg: 'golden base file vanished: base forgotten' });
        } else if (this.bases.get(key) === base) {
          // The last use survives a restart; a lost update only makes the base look older.
          // (A base forgotten or removed meanwhile gets no record written again.)
          await writeFile(this.layout.record(key), JSON.stringify(base)).catch((error: unknown) =>
            this.logger.warn({
              key,
              error: messageOf(error),
              msg: 'could not record the last use of a golden base',
            }),
          );
        }
        if (left <= 0) await this.evict();
      },
    };
  }

  async keep(request: KeepRequest, signal: AbortSignal): Promise<KeepOutcome> {
    const support = await this.support();
    if (!support.enabled) return { kept: false, reason: support.reason ?? 'clones are off' };
    const key = BaseLayout.key(request.sha256, request.virtualSize);
    if (this.bases.has(key)) return { kept: false, reason: 'a base of this image exists already' };
    if (this.making.has(key)) return { kept: false, reason: 'another job is making the base of this image' };
    const { maxBytes, maxCount } = this.settings.bases;
    const needed = (await stat(request.volumePath)).blocks * 512;
    if (maxCount === 0 || needed > maxBytes) {
      return {
        kept: false,
        reason: `BASE_MAX_BYTES (${maxBytes}) / BASE_MAX_COUNT (${maxCount}) leave no room for it`,
      };
    }
    this.making.add(key);
    const started = Date.now();
    try {
      const base = await this.make(key, request, signal);
      this.bases.set(key, base);
      await this.evict();
      return { kept: true, base, seconds: (Date.now() - started) / 1000 };
    } catch (error) {
      await this.removeFiles(key);
      if (signal.aborted) throw error;
      return { kept: false, reason: messageOf(error) };
    } finally {
      this.making.delete(key);
    }
  }

  /** Complete bases, most recently used first, with the clones being made from each. */
  list(): (BaseRecord & { cloning: number })[] {
    return [...this.bases.entries()]
      .map(([key, base]) => ({ ...base, cloning: this.leases.get(key) ?? 0 }))
      .sort((a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt));
  }

  get limits() {
    return { maxBytes: this.settings.bases.maxBytes, maxCount: this.settings.bases.maxCount };
  }

  /** With its image (DELETE /api/v1/cache/{sha256}, eviction): the image's bases go too; clones stay. */
  async removeImage(sha256: string): Promise<void> {
    for (const [key, base] of [...this.bases]) {
      if (base.sha256 !== sha256) continue;
      this.bases.delete(key);
      await this.removeFiles(key);
      this.logger.log({ sha256, virtual_size: base.virtualSize, msg: 'golden base removed with its image' });
    }
  }

  /**
   * A reflink copy of the fresh volume, cut to the image's virtual size, compared with the image
   * by qemu-img, its raw content hashed; the record is written last: only then is it complete.
   */
  private async make(key: string, request: KeepRequest, signal: AbortSignal): Promise<BaseRecord> {
    preparePrivateDir(this.layout.dir, 'the golden bases directory');
    const partial = this.layout.partial(key);
    await reflinkCopy(request.volumePath, partial);
    await truncate(partial, request.virtualSize);
    const options = {
      signal,
      timeoutMs: this.settings.jobs.timeoutSeconds * 1000,
      limits: { cpuSeconds: this.settings.jobs.timeoutSeconds },
    };
    if (!(await this.qemuImg.sameContent(partial, request.imagePath, request.format, options))) {
      throw new Error(`the copy of volume ${request.volumePath} does not read as image ${request.sha256}`);
    }
    const rawSha256 = await sha256Of(partial, signal);
    await fsyncPath(partial);
    const path = this.layout.base(key);
    await rename(partial, path);
    const now = new Date().toISOString();
    const base: BaseRecord = {
      sha256: request.sha256,
      virtualSize: request.virtualSize,
      path,
      rawSha256,
      allocatedBytes: (await stat(path)).blocks * 512,
      createdAt: now,
      lastUsedAt: now,
    };
    const record = this.layout.record(key);
    await writeFile(`${record}.tmp`, JSON.stringify(base), { mode: 0o600 });
    await fsyncPath(`${record}.tmp`);
    await rename(`${record}.tmp`, record);
    await fsyncPath(this.layout.dir);
    return base;
  }

  /**
   * Least recently used first, beyond BASE_MAX_BYTES / BASE_MAX_COUNT. Eviction waits for a base
   * a clone is being made from: it stops there (newer bases are not removed in its place) and
   * goes on when that clone is done (`release`). Clones take milliseconds; the overshoot is brief.
   */
  private async evict(): Promise<void> {
    const victims = chooseBaseEvictions(
      [...this.bases].map(([key, base]) => ({ key, size: base.allocatedBytes, lastUsedAt: base.lastUsedAt })),
      this.limits,
      (key) => (this.leases.get(key) ?? 0) > 0,
    );
    for (const { key, size, lastUsedAt } of victims) {
      this.bases.delete(key);
      await this.removeFiles(key);
      this.logger.log({ base: key, size, last_used_at: lastUsedAt, msg: 'golden base eviction' });
    }
  }

  /** A base's files; the directory too once it holds nothing (it exists only while it holds a base). */
  private async removeFiles(key: string): Promise<void> {
    await rm(this.layout.record(key), { force: true });
    await rm(`${this.layout.record(key)}.tmp`, { force: true });
    await rm(this.layout.base(key), { force: true });
    await rm(this.layout.partial(key), { force: true });
    await this.removeDirIfEmpty();
  }

  private async removeDirIfEmpty(): Promise<void> {
    if (this.bases.size > 0 || this.making.size > 0) return;
    await rmdir(this.layout.dir).catch((error: NodeJS.ErrnoException) => {
      // Another base arrived meanwhile, or the directory was never made: both fine.
      if (error.code !== 'ENOTEMPTY' && error.code !== 'ENOENT') throw error;
    });
  }
}

/** sha256 of a file's or a device's content; with `length`, of its first `length` bytes only. */
export async function sha256Of(path: string, signal: AbortSignal, length?: number): Promise<string> {
  const hash = createHash('sha256');
  const range = length === undefined ? {} : { start: 0, end: length - 1 };
  for await (const chunk of createReadStream(path, { signal, highWaterMark: 4 * 1024 * 1024, ...range })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
