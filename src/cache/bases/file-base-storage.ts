import { readdir, readFile, rename, rm, rmdir, stat, truncate, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Logger } from '@nestjs/common';
import { messageOf } from '../../common/errors';
import { fsyncPath } from '../../common/fsync';
import { preparePrivateDir } from '../../common/private-dir';
import { Settings } from '../../config/settings';
import { QemuImg } from '../../convert/qemu-img';
import { ReflinkProbe, reflinkCopy, sweepProbeFiles } from '../../volumes/reflink';
import type { BaseRecord, CloneSupport, KeepRequest } from '../base-store';
import { BaseLayout, sweepBases } from './base-layout';
import type { BaseStorage } from './base-storage';
import { sha256Of } from './raw-digest';

/**
 * Golden bases of the `file` backend (layout: base-layout.ts): made from the first fresh volume
 * an image is converted into by a reflink copy, verified against the image, then reflink-cloned
 * for new volumes. Each base has a JSON record beside it (written last: only then is it complete),
 * which also keeps its last use across a restart. The catalog (base-catalog.ts) decides which
 * bases there are and when one goes.
 */
export class FileBaseStorage implements BaseStorage {
  // The context the file backend's base lines have always had.
  readonly logger = new Logger('GoldenBases');
  readonly layout: BaseLayout;
  private readonly probe = new ReflinkProbe();

  constructor(
    private readonly settings: Settings,
    private readonly qemuImg: QemuImg,
  ) {
    this.layout = new BaseLayout(settings.volumes.dir);
  }

  async support(): Promise<CloneSupport> {
    const backend = this.settings.volumes.backend;
    if (backend !== 'file') {
      // lvm-thin has its own storage (ThinBaseStorage); thick LVs have no copy-on-write that leaves
      // an independent volume (an old-style LVM snapshot stays tied to its origin): they convert.
      return { enabled: false, reason: `the ${backend} backend has no golden bases: it converts` };
    }
    const { supported, reason } = await this.probe.of(this.settings.volumes.dir);
    return supported ? { enabled: true } : { enabled: false, reason };
  }

  keyOf(sha256: string, virtualSize: number): string {
    return BaseLayout.key(sha256, virtualSize);
  }

  /** Half-made bases, bases without a record and bases of images no longer cached are removed. */
  async recover(isCached: (sha256: string) => boolean, off: boolean): Promise<Map<string, BaseRecord>> {
    const bases = new Map<string, BaseRecord>();
    if (this.settings.volumes.backend === 'file') {
      const stale = await sweepProbeFiles(resolve(this.settings.volumes.dir));
      if (stale.length > 0)
        this.logger.warn({ files: stale, msg: 'removed reflink probe files a crash left' });
    }
    const names = await readdir(this.layout.dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!names) return bases;
    preparePrivateDir(this.layout.dir, 'the golden bases directory');
    // CLONE_FROM_BASE=off: no base is used, so none is kept.
    const { keep, remove } = sweepBases(names, (sha256) => !off && isCached(sha256));
    for (const name of remove) await rm(`${this.layout.dir}/${name}`, { force: true, recursive: true });
    if (remove.length > 0) {
      this.logger.warn({
        files: remove,
        msg: `removed ${remove.length} half-made or orphaned golden base file(s)`,
      });
    }
    for (const key of keep) {
      bases.set(key, JSON.parse(await readFile(this.layout.record(key), 'utf8')) as BaseRecord);
    }
    if (bases.size === 0) await this.emptied();
    return bases;
  }

  async room(_key: string, request: KeepRequest): Promise<{ bytes: number }> {
    return { bytes: (await stat(request.volumePath)).blocks * 512 };
  }

  /** A reflink copy of the fresh volume, cut to the image's virtual size (`<key>.partial`). */
  async copy(key: string, request: KeepRequest): Promise<{ path: string }> {
    return this.removingOnFailure(key, async () => {
      preparePrivateDir(this.layout.dir, 'the golden bases directory');
      const partial = this.layout.partial(key);
      await reflinkCopy(request.volumePath, partial);
      await truncate(partial, request.virtualSize);
      return { path: partial };
    });
  }

  async verify(key: string, request: KeepRequest, signal: AbortSignal): Promise<BaseRecord> {
    return this.removingOnFailure(key, () => this.complete(key, request, signal));
  }

  /** The last use survives a restart; a lost update only makes the base look older. */
  async recordUse(key: string, base: BaseRecord): Promise<void> {
    await writeFile(this.layout.record(key), JSON.stringify(base)).catch((error: unknown) =>
      this.logger.warn({
        key,
        error: messageOf(error),
        msg: 'could not record the last use of a golden base',
      }),
    );
  }

  async vanished(key: string): Promise<void> {
    await this.removeFiles(key);
    this.logger.warn({ base: key, msg: 'golden base file vanished: base forgotten' });
  }

  async remove(key: string): Promise<boolean> {
    await this.removeFiles(key);
    return true;
  }

  async removeWithImage(key: string, base: BaseRecord): Promise<void> {
    await this.removeFiles(key);
    this.logger.log({
      sha256: base.sha256,
      virtual_size: base.virtualSize,
      msg: 'golden base removed with its image',
    });
  }

  /** The directory exists only while it holds a base or one being made. */
  async emptied(): Promise<void> {
    await rmdir(this.layout.dir).catch((error: NodeJS.ErrnoException) => {
      // Another base arrived meanwhile, or the directory was never made: both fine.
      if (error.code !== 'ENOTEMPTY' && error.code !== 'ENOENT') throw error;
    });
  }

  /**
   * The copy compared with the image by qemu-img, its raw content hashed; the record is written
   * last: only then is it complete.
   */
  private async complete(key: string, request: KeepRequest, signal: AbortSignal): Promise<BaseRecord> {
    const partial = this.layout.partial(key);
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

  private async removingOnFailure<T>(key: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      await this.removeFiles(key);
      throw error;
    }
  }

  /** A base's files (not the directory: the catalog says when it holds nothing, `emptied`). */
  private async removeFiles(key: string): Promise<void> {
    await rm(this.layout.record(key), { force: true });
    await rm(`${this.layout.record(key)}.tmp`, { force: true });
    await rm(this.layout.base(key), { force: true });
    await rm(this.layout.partial(key), { force: true });
  }
}
