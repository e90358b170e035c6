import { readFileSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { sh } from './exec';

/** A loop device over a fresh sparse file: a block device that reads as zeros until written. */
export class LoopDevice {
  private constructor(
    readonly device: string,
    readonly backing: string,
  ) {}

  /**
   * `directIo`: the loop driver reads and writes its backing file with O_DIRECT, so a flush of the
   * loop device reaches the disk (buffered loop devices only reach the backing file's page cache).
   */
  static async create(backing: string, sizeBytes: number, directIo = true): Promise<LoopDevice> {
    await rm(backing, { force: true });
    const handle = await open(backing, 'w');
    await handle.truncate(sizeBytes);
    await handle.close();
    const args = ['--find', '--show', ...(directIo ? ['--direct-io=on'] : []), backing];
    const { stdout } = await sh('losetup', args);
    return new LoopDevice(stdout.trim(), backing);
  }

  /** Bytes written to the device so far (block layer: sectors written, 512 bytes each). */
  bytesWritten(): number {
    return blockStat(this.device).sectorsWritten * 512;
  }

  async destroy(): Promise<void> {
    await sh('losetup', ['--detach', this.device]).catch(() => undefined);
    await rm(this.backing, { force: true });
  }
}

/**
 * /sys/block/<dev>/stat fields (Documentation/block/stat.rst): write sectors is the 7th; write
 * zeroes requests count as writes, discards have their own fields (12th-15th).
 */
export function blockStat(device: string): { sectorsWritten: number; sectorsDiscarded: number } {
  const fields = readFileSync(`/sys/block/${basename(device)}/stat`, 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);
  return { sectorsWritten: fields[6], sectorsDiscarded: fields[13] ?? 0 };
}
