import { constants } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VolumeNotRegularFileError } from '../common/errors';
import { Settings } from '../config/settings';
import { acceptsDirectIo } from './direct-io';
import { reflinkCopy } from './reflink';
import { describeHolders, processesHolding } from './open-files';
import { checkRegularFile, NO_FOLLOW_WRITE, openVerified, UnsafeFileError } from './safe-open';
import { ExistingVolume, VolumeBackend, WritableVolume } from './volume-backend';

/**
 * Volumes as sparse raw files VOLUME_DIR/<name>.raw — exactly what a libvirt `dir` pool holds.
 * Only a regular file is ever a volume: anything else at its path (a symlink, even a dangling one
 * or one into VOLUME_DIR, a directory, a fifo, a device) is refused, and every write goes through
 * a descriptor opened with O_NOFOLLOW and verified to be the file that was checked (safe-open.ts).
 */
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
    const found = await this.safely(name, () => checkRegularFile(path));
    if (!found) return undefined;
    const { size, ...identity } = found;
    // A running VM keeps its disk file open: it must not be rewritten under it.
    return { name, path, sizeBytes: size, identity, inUseBy: describeHolders(await processesHolding(path)) };
  }

  async create(name: string, sizeBytes: number): Promise<WritableVolume> {
    await mkdir(this.dir, { recursive: true });
    const path = this.pathFor(name);
    let handle: FileHandle;
    try {
      // O_EXCL: never take over a file that appeared after the job looked; with O_CREAT it also
      // refuses a symlink there, dangling or not.
      handle = await open(path, constants.O_CREAT | constants.O_EXCL | NO_FOLLOW_WRITE, 0o600);
    } catch (error) {
      // Say what is in the way when it is not a regular file (a plain file stays EEXIST).
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        await this.safely(name, () => checkRegularFile(path));
      throw error;
    }
    try {
      const { dev, ino } = await handle.stat();
      await handle.truncate(sizeBytes);
      await handle.sync();
      const identity = { dev, ino };
      return { name, path, sizeBytes, identity, readsAsZeros: true, cacheMode: await cacheModeFor(path) };
    } finally {
      await handle.close();
    }
  }

  /**
   * A reflink clone (FICLONE: the new file shares the base's blocks until either is written; 2 ms
   * for 512 MiB on XFS), grown sparse to the requested size. COPYFILE_EXCL refuses whatever is at
   * the path already, a symlink included, as O_EXCL does in `create`.
   */
  async cloneFrom(name: string, sizeBytes: number, basePath: string): Promise<WritableVolume> {
    const path = this.pathFor(name);
    try {
      await reflinkCopy(basePath, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        await this.safely(name, () => checkRegularFile(path));
      throw error;
    }
    const handle = await this.safely(name, () => openVerified(path));
    try {
      const { dev, ino, size } = await handle.stat();
      if (size < sizeBytes) await handle.truncate(sizeBytes);
      await handle.sync();
      const identity = { dev, ino };
      const cacheMode = await cacheModeFor(path);
      return { name, path, sizeBytes, identity, readsAsZeros: false, cacheMode, clonedFrom: basePath };
    } finally {
      await handle.close();
    }
  }

  async reuse(volume: ExistingVolume): Promise<WritableVolume> {
    return { ...volume, readsAsZeros: false, cacheMode: await cacheModeFor(volume.path) };
  }

  openTarget(volume: WritableVolume): Promise<FileHandle> {
    return this.safely(volume.name, () => openVerified(volume.path, volume.identity));
  }

  async clearTail(volume: WritableVolume, imageBytes: number): Promise<void> {
    if (volume.readsAsZeros || imageBytes >= volume.sizeBytes) return;
    // Cutting the file back and growing it again deallocates the old tail: it reads as zeros, sparse.
    const handle = await this.openTarget(volume);
    try {
      await handle.truncate(imageBytes);
      await handle.truncate(volume.sizeBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async remove(name: string): Promise<void> {
    await rm(this.pathFor(name), { force: true });
  }

  /** Runs a check or open, turning "not a regular file" into the 409 that names the volume. */
  private async safely<T>(name: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof UnsafeFileError)
        throw new VolumeNotRegularFileError(name, error.path, error.problem);
      throw error;
    }
  }
}

/**
 * O_DIRECT where the filesystem takes it: measured on ext4 (docs/performance.md) it is as fast as
 * writeback for the data and, unlike writeback, stays fast with --target-is-zero.
 */
async function cacheModeFor(path: string): Promise<WritableVolume['cacheMode']> {
  return (await acceptsDirectIo(path)) ? 'none' : 'writeback';
}
