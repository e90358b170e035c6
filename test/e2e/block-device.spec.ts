import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BlockDevice, deviceNumbers } from '../../src/volumes/block-device';
import { makeWorkdir } from '../harness/workdir';

const MIB = 1024 * 1024;

describe('BlockDevice.sizeOf: a block device size from sysfs, by its node numbers', () => {
  const work = makeWorkdir('block-device');
  const loops: string[] = [];
  after(() => {
    for (const loop of loops) execFileSync('losetup', ['--detach', loop]);
    work.cleanup();
  });

  it('reads a loop device size, given the device or a symlink to it (as /dev/<vg>/<lv> is)', async () => {
    const backing = join(work.dir, 'disk.img');
    execFileSync('truncate', ['-s', `${37 * MIB}`, backing]);
    const loop = execFileSync('losetup', ['--find', '--show', backing]).toString().trim();
    loops.push(loop);
    const link = join(work.dir, 'vm-link');
    symlinkSync(loop, link);
    const blocks = new BlockDevice();
    assert.equal(await blocks.sizeOf(loop), 37 * MIB);
    assert.equal(await blocks.sizeOf(link), 37 * MIB);
  });

  it('fails for a path that is no block device', async () => {
    await assert.rejects(new BlockDevice().sizeOf(join(work.dir, 'missing')), /ENOENT/);
    await assert.rejects(new BlockDevice().sizeOf(work.dir), /is not a block device/);
  });

  it('splits a dev_t as glibc does, numbers above 255 and 4095 included', () => {
    // makedev(major, minor) = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
    const makedev = (major: bigint, minor: bigint) =>
      (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n);
    for (const [major, minor] of [
      [7, 3],
      [253, 0],
      [259, 65_536],
      [4_100, 300],
    ]) {
      assert.deepEqual(deviceNumbers(makedev(BigInt(major), BigInt(minor))), { major, minor });
    }
  });
});
