import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { Arrivals } from '../../src/convert/nbd/arrivals';
import { NbdExport } from '../../src/convert/nbd/nbd-export';
import { rawReference, sameBytes, slowQcow2, smallQcow2, smallRaw } from '../fixtures/images';
import { makeWorkdir } from '../harness/workdir';

const run = promisify(execFile);

/**
 * Copies `source` into `target` chunk by chunk, calling `arrivals.advance` after each write has
 * completed, like the downloader does: the file grows while qemu-img reads it through the export.
 * `stopAt`: fail the download there instead of finishing.
 */
async function grow(
  source: string,
  target: string,
  arrivals: Arrivals,
  chunk: number,
  pauseMs: number,
  stopAt?: number,
) {
  const input = await open(source, 'r');
  const output = await open(target, 'r+');
  const buffer = Buffer.alloc(chunk);
  let done = 0;
  try {
    for (;;) {
      const { bytesRead } = await input.read(buffer, 0, chunk, done);
      if (bytesRead === 0) break;
      await output.write(buffer, 0, bytesRead, done);
      done += bytesRead;
      if (stopAt !== undefined && done >= stopAt) {
        arrivals.fail(new Error('the source went away'));
        return;
      }
      arrivals.advance(done);
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
    arrivals.finish();
  } finally {
    await input.close();
    await output.close();
  }
}

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: 'pipe' });
}

function qemuIo(path: string, ...commands: string[]): void {
  execFileSync('qemu-io', ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), path], { stdio: 'pipe' });
}

describe('NbdExport read by the real qemu-img and nbdinfo while the file grows', () => {
  const work = makeWorkdir('nbd-export');
  after(() => work.cleanup());

  /** An empty file of the image's name in the workdir, the export on it, and the grower. */
  async function streamed(image: string, name: string) {
    const target = join(work.dir, `${name}.partial`);
    await (await open(target, 'w')).close();
    const arrivals = new Arrivals((await stat(image)).size);
    const exported = await NbdExport.open({ file: target, arrivals, parentDir: work.dir });
    return { target, arrivals, exported };
  }

  async function convertWhileGrowing(image: string, format: string, name: string, chunk = 256 * 1024) {
    const { arrivals, exported } = await streamed(image, name);
    try {
      const out = join(work.dir, `${name}.out.raw`);
      const converting = run('qemu-img', ['convert', '-f', format, '-O', 'raw', exported.uri, out]);
      // The first byte arrives only once qemu-img's first read is waiting for it, so everything it
      // reads arrives while it converts. (Waiting for its connection alone was not enough: on a
      // loaded machine a 1.6 MB image had grown whole before qemu-img sent its first read.)
      let ended = false;
      void converting.finally(() => (ended = true)).catch(() => undefined);
      while (exported.stats.waitedReads === 0 && !ended)
        await new Promise((resolve) => setTimeout(resolve, 5));
      await grow(image, join(work.dir, `${name}.partial`), arrivals, chunk, 5);
      await converting;
      assert.ok(
        sameBytes(out, rawReference(image, format, work.dir)),
        'differs from qemu-img convert of the file',
      );
    } finally {
      await exported.close();
    }
  }

  it('tells qemu-img info the format and virtual size, and nbdinfo the full size and read-only', async () => {
    const image = smallQcow2();
    const { target, arrivals, exported } = await streamed(image, 'info');
    try {
      const growing = grow(image, target, arrivals, 64 * 1024, 2);
      const info = JSON.parse(
        (await run('qemu-img', ['info', '--output=json', '-f', 'qcow2', exported.uri])).stdout,
      );
      assert.equal(info.format, 'qcow2');
      assert.equal(info['virtual-size'], 64 * 1024 * 1024);
      const nbd = JSON.parse((await run('nbdinfo', ['--json', exported.uri])).stdout);
      const only = nbd.exports[0];
      assert.equal(only['export-size'], (await stat(image)).size);
      assert.equal(only['is_read_only'], true);
      await growing;
    } finally {
      await exported.close();
    }
  });

  it('converts a plain qcow2 byte-exact while it is being written', async () => {
    await convertWhileGrowing(smallQcow2(), 'qcow2', 'plain');
  });

  it('converts a compressed qcow2 byte-exact while it is being written', async () => {
    const image = join(work.dir, 'compressed.qcow2');
    qemuImg('convert', '-c', '-f', 'qcow2', '-O', 'qcow2', smallQcow2(), image);
    await convertWhileGrowing(image, 'qcow2', 'compressed', 64 * 1024);
  });

  it('converts a qcow2 whose length is not a multiple of 512 (qemu reads its last partial sector)', async () => {
    // 1687607 bytes. With simple replies qemu shortened its last read to the export's end, then
    // waited for the whole sector: the convert hung at 100 %. Structured replies say the length.
    const image = slowQcow2();
    assert.notEqual((await stat(image)).size % 512, 0);
    await convertWhileGrowing(image, 'qcow2', 'unaligned', 512 * 1024);
  });

  it('converts a raw image byte-exact while it is being written', async () => {
    await convertWhileGrowing(smallRaw(), 'raw', 'raw', 1024 * 1024);
  });

  it('converts a qcow2 whose clusters lie out of file order (the first guest bytes at the file end)', async () => {
    const image = join(work.dir, 'shuffled.qcow2');
    qemuImg('create', '-f', 'qcow2', image, '64M');
    // Written in place from the end of the disk backwards: each write allocates the next clusters
    // of the file, so guest order and file order run opposite and reads run far ahead.
    qemuIo(
      image,
      'write -P 0x11 60M 4M',
      'write -P 0x22 32M 2M',
      'write -P 0x33 8M 1M',
      'write -P 0x44 0 512K',
    );
    await convertWhileGrowing(image, 'qcow2', 'shuffled', 128 * 1024);
  });

  it('fails the reads when the download dies, so qemu-img exits with an I/O error', async () => {
    const image = smallRaw();
    const { target, arrivals, exported } = await streamed(image, 'dies');
    try {
      const out = join(work.dir, 'dies.out.raw');
      const converting = run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', exported.uri, out]).then(
        () => ({ stderr: 'qemu-img convert succeeded' }),
        (error: { stderr: string }) => error,
      );
      await grow(image, target, arrivals, 1024 * 1024, 5, 16 * 1024 * 1024);
      assert.match((await converting).stderr, /Input\/output error/);
      assert.ok(exported.stats.failedReads > 0);
    } finally {
      await exported.close();
    }
  });
});
