import { constants } from 'node:fs';
import { mkdir, open, rm, stat, truncate } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fsyncPath } from '../common/fsync';
import { Settings } from '../config/settings';
import { acceptsDirectIo } from './direct-io';
import { describeHolders, processesHolding } from './open-files';
import { ExistingVolume, VolumeBackend, WritableVolume } from './volume-backend';

/** Volumes as sparse raw files VOLUME_DIR/<name>.raw — exactly what a libvirt `dir` pool holds. */
export class FileBackend implements VolumeBackend {
  readonly kind = 'file';
  private readonly dir: string;

  constructor(settings: Settings) {
    this.dir = resolve(settings.volumes.dir);
  }

  pathFor(name: string): string {
    return join(this.dir, `${name}.raw`);
  }

  async find(name: string): Promise<ExistingVolume | undefined> {
    const path = this.pathFor(name);
    try {
      const info = await stat(path);
      // A running VM keeps its disk file open: it must not be rewritten under it.
      return { name, path, sizeBytes: info.size, inUseBy: describeHolders(await processesHolding(path)) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async create(name: string, sizeBytes: number): Promise<WritableVolume> {
    await mkdir(this.dir, { recursive: true });
    const path = this.pathFor(name);
    // O_EXCL: never take over a file that appeared after the job looked.
    const handle = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
    try {
      await handle.truncate(sizeBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return { name, path, sizeBytes, readsAsZeros: true, cacheMode: await cacheModeFor(path) };
  }

  async reuse(volume: ExistingVolume): Promise<WritableVolume> {
    return { ...volume, readsAsZeros: false, cacheMode: await cacheModeFor(volume.path) };
  }

  async clearTail(volume: WritableVolume, imageBytes: number): Promise<void> {
    if (volume.readsAsZeros || imageBytes >= volume.sizeBytes) return;
    // Cutting the file back and growing it again deallocates the old tail: it reads as zeros, sparse.
    await truncate(volume.path, imageBytes);
    await truncate(volume.path, volume.sizeBytes);
    await fsyncPath(volume.path);
  }

  async remove(name: string): Promise<void> {
    await rm(this.pathFor(name), { force: true });
  }
}

/**
 * O_DIRECT where the filesystem takes it: measured on ext4 (docs/performance.md) it is as fast as
 * writeback for the data and, unlike writeback, stays fast with --target-is-zero.
 */
async function cacheModeFor(path: string): Promise<WritableVolume['cacheMode']> {
  return (await acceptsDirectIo(path)) ? 'none' : 'writeback';
}
