import { open } from 'node:fs/promises';
import { Injectable } from '@nestjs/common';
import { commandError, run } from '../common/exec';

/** Adapter over blkdiscard: zeroes a byte range of a block device without writing from user space. */
@Injectable()
export class BlockDevice {
  /**
   * Makes [offset, offset + length) read as zeros. blkdiscard --zeroout wants whole sectors, so a
   * partial first sector is zeroed by a plain write.
   */
  async zeroRange(device: string, offset: number, length: number): Promise<void> {
    if (length <= 0) return;
    const aligned = Math.ceil(offset / 512) * 512;
    if (aligned > offset) {
      const handle = await open(device, 'r+');
      try {
        await handle.write(Buffer.alloc(aligned - offset), 0, aligned - offset, offset);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    const end = offset + length;
    if (end - aligned <= 0) return;
    try {
      await run(
        'blkdiscard',
        ['--zeroout', '--offset', String(aligned), '--length', String(end - aligned), device],
        {
          timeoutMs: 3600_000,
        },
      );
    } catch (error) {
      throw commandError('blkdiscard --zeroout', error);
    }
  }
}
