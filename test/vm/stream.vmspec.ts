import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { readSse, type SseEvent } from '../harness/sse';
import { makeWorkdir } from '../harness/workdir';
import { VM_FIXTURES } from '../fixtures/images';

/*
 * Runs INSIDE the LVM guest (test/vm/run-in-guest.mjs): issue #18's streaming path
 * (STREAM_CONVERT=auto: the image is written into the volume while it downloads) into a thick and a
 * thin LV on real lvm2 + device-mapper. /dev/vdd becomes the volume group (lvm.vmspec.ts has vdb,
 * clone.vmspec.ts vdc; suite.mjs boots three test disks). One daemon per backend, one after the other.
 */
const DISK = '/dev/vdd';
const VG = 'vgstream';
const POOL = 'pool';
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
/** A daemon's start under TCG: ~20 s on an idle host, minutes on a loaded one (lvm.vmspec.ts). */
const DAEMON_START_MS = 600_000;
/** The image server's pace: each image takes about this long to arrive, so the write overlaps it. */
const DOWNLOAD_SECONDS = 15;

function sh(...args: string[]): string {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Whether the device holds `qemu-img convert -O raw` of the image followed by zeros up to its end
 * (the reference is converted, then grown to the device's size; qemu-img compare reads every byte).
 */
function holdsImage(device: string, image: string, dir: string): boolean {
  const size = Number(sh('blockdev', '--getsize64', device).trim());
  const reference = join(dir, `ref-${Date.now()}.raw`);
  sh('qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', image, reference);
  sh('qemu-img', 'resize', '-f', 'raw', reference, String(size));
  try {
    execFileSync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', device, reference]);
    return true;
  } catch {
    return false;
  } finally {
    sh('rm', '-f', reference);
  }
}

/** Fills free extents with a pattern, so a new thick LV starts on old data (its tail must be zeroed). */
function dirtyFreeSpace(bytes: number): void {
  sh('lvcreate', '--yes', '-L', `${bytes}b`, '-n', 'junk', VG);
  const fd = openSync(`/dev/${VG}/junk`, 'w');
  const chunk = Buffer.alloc(4 * MIB, 'OLD-TENANT-DATA ');
  for (let written = 0; written < bytes; written += chunk.length) writeSync(fd, chunk);
  closeSync(fd);
  sh('lvremove', '--yes', `${VG}/junk`);
}

describe('streaming provision (STREAM_CONVERT=auto) into LVs on real device-mapper', () => {
  const work = makeWorkdir('lvm-stream');
  let server: ImageServer;
  let daemon: Daemon | undefined;

  before(async () => {
    assert.ok(existsSync(DISK), `${DISK} is missing: boot the guest with --disks 3 (test/vm/suite.mjs does)`);
    sh('pvcreate', '--yes', DISK);
    sh('vgcreate', VG, DISK);
    sh('lvcreate', '--yes', '--type', 'thin-pool', '-L', '1G', '-n', POOL, VG);
    server = await new ImageServer(VM_FIXTURES).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  /**
   * Provisions `image` with a fresh daemon of the backend, the server paced so the download takes
   * DOWNLOAD_SECONDS; returns the job's events and its log lines. The daemon is stopped after.
   */
  async function streamInto(env: Record<string, string>, image: string, volume: string) {
    const dir = join(work.dir, volume);
    mkdirSync(dir);
    daemon = await new Daemon({
      dir,
      env: { ...env, LVM_VOLUME_GROUP: VG, STREAM_CONVERT: 'auto' },
      startTimeoutMs: DAEMON_START_MS,
    }).start();
    try {
      server.bytesPerSecond = Math.ceil(statSync(join(VM_FIXTURES, image)).size / DOWNLOAD_SECONDS);
      const submitted = await daemon.provision({
        image_url: `${server.url}/${image}`,
        volume_name: volume,
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      const jobId = submitted.body.job_id as string;
      const { events } = await readSse(`${daemon.url}/api/v1/jobs/${jobId}/events`).done;
      const final = await daemon.waitFinal(jobId, 600_000);
      const lines = daemon.jsonLogs().filter((l) => l.job_id === jobId);
      return { final, events, lines };
    } finally {
      await daemon.stop();
      daemon = undefined;
    }
  }

  /** The job went through stage `streaming` and its write started before its download ended. */
  function assertStreamed(events: SseEvent[], lines: Record<string, any>[]) {
    const stages = [...new Set(events.map((e) => e.data?.progress?.stage).filter(Boolean))];
    assert.ok(stages.includes('streaming'), `stages seen over SSE: ${stages.join(', ')}`);
    assert.ok(!stages.includes('converting'), `the job also took the old path: ${stages.join(', ')}`);
    const path = lines.find((l) => String(l.msg).startsWith('write path:'));
    assert.equal(path?.write_path, 'streaming', JSON.stringify(path));
    const written = lines.find((l) => l.msg === 'image written to the volume while it downloaded');
    assert.ok(written, 'the job logs the streamed write');
    assert.ok(
      Date.parse(written.convert_started_at) < Date.parse(written.download_ended_at),
      `convert started (${written.convert_started_at}) before the download ended (${written.download_ended_at})`,
    );
  }

  it('thick LV (VOLUME_BACKEND=lvm): a plain qcow2 streamed onto old data is the image, then zeros', async () => {
    dirtyFreeSpace(1100 * MIB);
    const { final, events, lines } = await streamInto(
      { VOLUME_BACKEND: 'lvm' },
      'sparse.qcow2',
      'vm-stream-thick',
    );
    assert.equal(final.status, 'completed', final.error);
    assert.equal(final.volume_path, `/dev/${VG}/vm-stream-thick`);
    assertStreamed(events, lines);
    assert.equal(Number(sh('blockdev', '--getsize64', final.volume_path).trim()), GIB);
    assert.ok(
      holdsImage(final.volume_path, join(VM_FIXTURES, 'sparse.qcow2'), work.dir),
      'the LV is not qemu-img convert of sparse.qcow2 followed by zeros',
    );
  });

  it('thin LV (VOLUME_BACKEND=lvm-thin): a compressed qcow2 streamed is the image, then zeros', async () => {
    const { final, events, lines } = await streamInto(
      { VOLUME_BACKEND: 'lvm-thin', LVM_THIN_POOL: POOL },
      'slow.qcow2',
      'vm-stream-thin',
    );
    assert.equal(final.status, 'completed', final.error);
    assert.equal(final.volume_path, `/dev/${VG}/vm-stream-thin`);
    assertStreamed(events, lines);
    const attr = sh('lvs', '--noheadings', '-o', 'lv_attr,pool_lv', `${VG}/vm-stream-thin`).trim();
    assert.match(attr, new RegExp(`^V\\S+\\s+${POOL}$`), 'a thin LV in the pool');
    assert.ok(
      holdsImage(final.volume_path, join(VM_FIXTURES, 'slow.qcow2'), work.dir),
      'the LV is not qemu-img convert of slow.qcow2 followed by zeros',
    );
  });
});
