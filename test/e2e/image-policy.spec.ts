import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { makeWorkdir } from '../harness/workdir';
import { rawReference, sameBytes, smallQcow2, smallRaw } from '../fixtures/images';

const GIB = 1024 ** 3;

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: 'pipe' });
}

/** Overwrites bytes of a file at an offset (crafting hostile headers). */
function patch(path: string, offset: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

describe('never trust an image: the inspection policy', () => {
  const work = makeWorkdir('policy');
  const www = join(work.dir, 'www');
  const volumes = join(work.dir, 'var/volumes');
  const marker = `HOST-SECRET-${Date.now()}-DO-NOT-LEAK`;
  const secret = join(work.dir, 'host-secret.raw');
  let server: ImageServer;
  let daemon: Daemon;

  before(async () => {
    mkdirSync(www);
    writeFileSync(secret, Buffer.concat([Buffer.from(marker), Buffer.alloc(1024 * 1024 - marker.length)]));
    server = await new ImageServer(www).start();
    daemon = await new Daemon({ dir: work.dir }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  async function provision(file: string, imageType: string, name: string, sizeGb = 1) {
    const submitted = await daemon.provision({
      image_url: `${server.url}/${file}`,
      volume_name: name,
      volume_size_gb: sizeGb,
      image_type: imageType,
    });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    return daemon.waitFinal(submitted.body.job_id);
  }

  async function assertRefused(
    file: string,
    imageType: string,
    name: string,
    rule: RegExp | string,
    message?: RegExp,
  ) {
    const final = await provision(file, imageType, name);
    assert.equal(final.status, 'failed', `${file} was not refused`);
    assert.equal(final.error_code, 'image_rejected', final.error);
    assert.match(final.error, typeof rule === 'string' ? new RegExp(`rule: ${rule}`) : rule);
    if (message) assert.match(final.error, message);
    assert.match(final.error, new RegExp(file.replace('.', '\\.')), 'the refusal names the image');
    assert.equal(final.progress.stage, 'inspecting');
    assert.ok(!existsSync(join(volumes, `${name}.raw`)), 'a volume was created for a refused image');
    return final;
  }

  it('refuses a qcow2 whose backing file points at a host file, and the host file leaks nowhere', async () => {
    qemuImg('create', '-f', 'qcow2', '-b', secret, '-F', 'raw', join(www, 'backing.qcow2'), '1M');
    await assertRefused('backing.qcow2', 'qcow2', 'vm-backing', 'no-backing-file', /backing file/);
    const leaks = (dir: string): string[] =>
      existsSync(dir)
        ? readdirSync(dir, { recursive: true, withFileTypes: true })
            .filter((e) => e.isFile())
            .map((e) => join(e.parentPath, e.name))
            .filter((f) => readFileSync(f).includes(marker))
        : [];
    assert.deepEqual(leaks(join(work.dir, 'var')), [], 'the marker reached a volume or cache file');
    assert.ok(!daemon.logs.some((line) => line.includes(marker)), 'the marker reached the log');
  });

  it('refuses a qcow2 with an external data file', async () => {
    qemuImg(
      'create',
      '-f',
      'qcow2',
      '-o',
      `data_file=${secret},data_file_raw=on`,
      join(www, 'datafile.qcow2'),
      '1M',
    );
    await assertRefused('datafile.qcow2', 'qcow2', 'vm-datafile', 'no-external-data-file');
  });

  it('refuses a vmdk whose descriptor names a host file', async () => {
    writeFileSync(
      join(www, 'flat.vmdk'),
      [
        '# Disk DescriptorFile',
        'version=1',
        'CID=fffffffe',
        'parentCID=ffffffff',
        'createType="monolithicFlat"',
        '',
        `RW 2048 FLAT "${secret}" 0`,
        '',
      ].join('\n'),
    );
    await assertRefused('flat.vmdk', 'vmdk', 'vm-flat', 'vmdk-self-contained', /monolithicFlat/);
  });

  it('refuses a raw image sent as qcow2', async () => {
    copyFileSync(smallRaw(), join(www, 'plain.raw'));
    await assertRefused(
      'plain.raw',
      'qcow2',
      'vm-raw-as-qcow2',
      'format-mismatch',
      /is raw, but the request says image_type qcow2/,
    );
  });

  it('refuses a qcow2 sent as raw, so its header bytes never reach a volume', async () => {
    copyFileSync(smallQcow2(), join(www, 'disguised.qcow2'));
    await assertRefused(
      'disguised.qcow2',
      'raw',
      'vm-qcow2-as-raw',
      'format-mismatch',
      /is qcow2, but the request says image_type raw/,
    );
  });

  it('refuses an image that claims 16 EiB of virtual size, at once', async () => {
    qemuImg('create', '-f', 'qcow2', join(www, 'huge.qcow2'), '1M');
    const size = Buffer.alloc(8);
    size.writeBigUInt64BE(0xfffffffffffffe00n);
    patch(join(www, 'huge.qcow2'), 24, size);
    const started = Date.now();
    await assertRefused('huge.qcow2', 'qcow2', 'vm-huge', 'fits-volume', /18446744073709551104 bytes/);
    assert.ok(Date.now() - started < 10_000);
  });

  it('refuses a corrupted qcow2 with what qemu-img found', async () => {
    const path = join(www, 'corrupt.qcow2');
    copyFileSync(smallQcow2(), path);
    const header = readFileSync(path).subarray(0, 104);
    const l1Offset = Number(header.readBigUInt64BE(40));
    // L1 entries pointing far outside the file, with reserved bits set.
    patch(path, l1Offset, Buffer.from('7f'.repeat(16) + 'ff'.repeat(16), 'hex'));
    const refused = await assertRefused(
      'corrupt.qcow2',
      'qcow2',
      'vm-corrupt',
      'not-corrupt',
      /qemu-img check found/,
    );
    console.log(`corrupt qcow2 refusal: ${refused.error}`);
    // Now a cache hit: qemu-img judges it again (only verdicts that passed are remembered).
    await assertRefused('corrupt.qcow2', 'qcow2', 'vm-corrupt-again', 'not-corrupt', /qemu-img check found/);
  });

  it('refuses an image larger than the volume, giving both sizes', async () => {
    qemuImg('create', '-f', 'qcow2', join(www, 'big.qcow2'), '2G');
    await assertRefused(
      'big.qcow2',
      'qcow2',
      'vm-small',
      'fits-volume',
      new RegExp(`${2 * GIB} bytes.*${GIB} bytes`),
    );
  });

  it("remembers qemu-img's verdict on a warm image, never the request's rules", async () => {
    qemuImg('create', '-f', 'qcow2', join(www, 'warm.qcow2'), '2G');
    const inspected = (jobId: string) =>
      daemon.jsonLogs().find((l) => l.job_id === jobId && l.msg === 'image inspected: safe to open');
    // Cached first (a prefetch): a cold provision would stream, inspecting through its own export.
    const prefetched = await daemon.request('POST', '/api/v1/cache/prefetch', {
      image_url: `${server.url}/warm.qcow2`,
    });
    assert.equal(prefetched.status, 202, JSON.stringify(prefetched.body));
    assert.equal((await daemon.waitFinal(prefetched.body.job_id)).status, 'completed');
    const first = await provision('warm.qcow2', 'qcow2', 'vm-warm-1', 2);
    assert.equal(first.status, 'completed', first.error);
    assert.equal(inspected(first.job_id)?.qemu_img_ran, true);
    // The same bytes into a volume too small for them: refused, whatever qemu-img said before.
    await assertRefused('warm.qcow2', 'qcow2', 'vm-warm-small', 'fits-volume');
    // And declared as another format: refused by our own header reading, which runs every time.
    await assertRefused('warm.qcow2', 'raw', 'vm-warm-raw', 'format-mismatch');
    const again = await provision('warm.qcow2', 'qcow2', 'vm-warm-2', 2);
    assert.equal(again.status, 'completed', again.error);
    assert.equal(inspected(again.job_id)?.qemu_img_ran, false);
    assert.equal(inspected(again.job_id)?.virtual_size, 2 * GIB);
  });

  describe('compressed images (gz, xz, zst, bz2) are verified as published, unpacked once, and land byte-exact', () => {
    const wrappers: [string, string[]][] = [
      ['gz', ['gzip', '-kf']],
      ['xz', ['xz', '-kf', '-T1']],
      ['zst', ['zstd', '-qf']],
      ['bz2', ['bzip2', '-kf']],
    ];
    for (const [ext, command] of wrappers) {
      it(`small.raw.${ext} as raw`, async () => {
        const raw = join(www, `w-${ext}.raw`);
        copyFileSync(smallRaw(), raw);
        execFileSync(command[0], [...command.slice(1), raw]);
        const name = `vm-wrapped-${ext}`;
        const final = await provision(`w-${ext}.raw.${ext}`, 'raw', name);
        assert.equal(final.status, 'completed', final.error);
        const reference = join(work.dir, `ref-${ext}.raw`);
        copyFileSync(smallRaw(), reference);
        execFileSync('truncate', ['-s', String(GIB), reference]);
        assert.ok(sameBytes(join(volumes, `${name}.raw`), reference));
        assert.equal(
          final.image_sha256,
          execFileSync('sha256sum', [`${raw}.${ext}`])
            .toString()
            .slice(0, 64),
          'the digest is of the bytes as published',
        );
      });
    }

    it('keeps a sparse unpacked copy of raw.xz in the cache and does not unpack it again', async () => {
      const cached = join(
        work.dir,
        'var/cache/sha256',
        execFileSync('sha256sum', [join(www, 'w-xz.raw.xz')])
          .toString()
          .slice(0, 64),
      );
      const unpacked = `${cached}.unpacked`;
      assert.ok(existsSync(unpacked));
      const allocated = Number(execFileSync('du', ['-B1', unpacked]).toString().split('\t')[0]);
      const apparent = Number(execFileSync('stat', ['-c', '%s', unpacked]).toString());
      assert.equal(apparent, 64 * 1024 * 1024);
      assert.ok(
        allocated <= 10 * 1024 * 1024,
        `unpacked copy allocates ${allocated} bytes for 8 MiB of data`,
      );
      const before = daemon
        .jsonLogs()
        .filter((l) => l.msg === 'unpacked compressed image into the cache').length;
      const again = await provision('w-xz.raw.xz', 'raw', 'vm-wrapped-xz-2');
      assert.equal(again.status, 'completed', again.error);
      assert.equal(again.cache_hit, true);
      const after = daemon
        .jsonLogs()
        .filter((l) => l.msg === 'unpacked compressed image into the cache').length;
      assert.equal(after, before, 'the image was unpacked a second time');
    });

    it('refuses a compressed image that unpacks to more than the volume', async () => {
      const bomb = join(www, 'bomb.raw');
      writeFileSync(bomb, '');
      execFileSync('truncate', ['-s', String(2 * GIB), bomb]);
      execFileSync('zstd', ['-qf', '--rm', bomb]);
      await assertRefused('bomb.raw.zst', 'raw', 'vm-bomb', 'fits-volume', /unpacks to more than/);
    });
  });

  describe('each supported format provisions byte-exact', () => {
    const variants: [string, string, string[]][] = [
      ['v2.qcow2', 'qcow2', ['-O', 'qcow2', '-o', 'compat=0.10']],
      ['v3.qcow2', 'qcow2', ['-O', 'qcow2', '-o', 'compat=1.1']],
      ['zlib.qcow2', 'qcow2', ['-O', 'qcow2', '-c']],
      ['zstd.qcow2', 'qcow2', ['-O', 'qcow2', '-c', '-o', 'compression_type=zstd']],
      ['sparse.vmdk', 'vmdk', ['-O', 'vmdk']],
      ['stream.vmdk', 'vmdk', ['-O', 'vmdk', '-o', 'subformat=streamOptimized']],
      ['disk.vhdx', 'vhdx', ['-O', 'vhdx']],
      ['dynamic.vhd', 'vpc', ['-O', 'vpc']],
      ['fixed.vhd', 'vpc', ['-O', 'vpc', '-o', 'subformat=fixed']],
      ['disk.vdi', 'vdi', ['-O', 'vdi']],
      ['auto.qcow2', 'auto', ['-O', 'qcow2']],
      ['auto.raw', 'auto', ['-O', 'raw']],
    ];
    for (const [file, type, args] of variants) {
      it(`${file} as ${type}`, async () => {
        const path = join(www, file);
        qemuImg('convert', '-f', 'raw', ...args, smallRaw(), path);
        const name = `vm-${file.replace(/\W/g, '-')}`;
        const final = await provision(file, type, name);
        assert.equal(final.status, 'completed', final.error);
        const format = type === 'auto' ? (file.endsWith('.raw') ? 'raw' : 'qcow2') : type;
        const reference = rawReference(path, format, work.dir);
        execFileSync('truncate', ['-s', String(GIB), reference]);
        assert.ok(sameBytes(join(volumes, `${name}.raw`), reference), `${file} did not land byte-exact`);
      });
    }
  });
});
