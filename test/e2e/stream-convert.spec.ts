import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertVolumeHolds, sha256File } from '../fixtures/images';
import type { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { s3Bed } from '../harness/s3-bed';
import { BUCKET } from '../harness/s3-server';
import { readSse, type SseEvent } from '../harness/sse';
import { waitFor } from '../harness/wait';

/** The S3 server's pace in these tests: each image takes one to a few seconds to arrive. */
const SLOW = 4 * 1024 * 1024;

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: 'pipe' });
}

function qemuIo(path: string, format: string, ...commands: string[]): void {
  execFileSync('qemu-io', ['-f', format, ...commands.flatMap((c) => ['-c', c]), path], { stdio: 'pipe' });
}

/**
 * A raw disk no other test shares: `mib` MiB of random hex text (compressible, about 2:1) from 1 MiB
 * on, holes elsewhere, in a virtual disk of twice the size.
 */
function uniqueRaw(dir: string, name: string, mib: number): string {
  const path = join(dir, `${name}.raw`);
  const text = Buffer.from(randomBytes((mib * 1024 * 1024) / 2).toString('hex'));
  writeFileSync(path, Buffer.concat([Buffer.alloc(1024 * 1024), text]));
  truncateSync(path, mib * 2 * 1024 * 1024);
  return path;
}

function plainQcow2(dir: string, name: string, mib = 8): string {
  const raw = uniqueRaw(dir, `${name}.src`, mib);
  const out = join(dir, `${name}.qcow2`);
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', raw, out);
  rmSync(raw);
  return out;
}

function compressedQcow2(dir: string, name: string, mib = 12): string {
  const raw = uniqueRaw(dir, `${name}.src`, mib);
  const out = join(dir, `${name}.qcow2`);
  qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', raw, out);
  rmSync(raw);
  return out;
}

/**
 * A qcow2 written in place with qemu-io from the end of the disk backwards (and never converted):
 * its clusters sit in the file in the reverse order of the disk, so a convert that reads the disk
 * in order asks first for the file's last bytes.
 */
function outOfOrderQcow2(dir: string, name: string): string {
  const out = join(dir, `${name}.qcow2`);
  qemuImg('create', '-f', 'qcow2', out, '32M');
  const writes = [];
  for (let at = 30; at >= 0; at -= 4) writes.push(`write -P 0x${(at + 16).toString(16)} ${at}M 1M`);
  qemuIo(out, 'qcow2', ...writes);
  return out;
}

const MIB = 1024 * 1024;

/**
 * A 1 GiB qcow2 whose second L2 table sits ~48 MiB into the file: 48 MiB of data in the disk's
 * first half, 2 MiB at the start of its second (qemu-img convert places an L2 table where the data
 * it maps begins). qemu-img convert reads every L2 table before it writes a byte.
 */
function farL2Qcow2(dir: string, name: string): string {
  const raw = join(dir, `${name}.src.raw`);
  const text = (mib: number) => Buffer.from(randomBytes((mib * MIB) / 2).toString('hex'));
  writeFileSync(raw, text(48));
  const fd = openSync(raw, 'r+');
  writeSync(fd, text(2), 0, 2 * MIB, 512 * MIB);
  closeSync(fd);
  truncateSync(raw, 1024 * MIB);
  const out = join(dir, `${name}.qcow2`);
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', raw, out);
  rmSync(raw);
  return out;
}

/** Where L2 table `index` of a qcow2 begins, from its L1 table. */
function l2Offset(image: string, index: number): number {
  const file = readFileSync(image);
  const l1 = Number(file.readBigUInt64BE(40));
  return Number(file.readBigUInt64BE(l1 + 8 * index) & 0x00fffffffffffe00n);
}

/** The nice value in a /proc/.../stat file (field 19; the command name before it may hold spaces). */
function niceOf(statFile: string): number {
  const fields = readFileSync(statFile, 'utf8').split(') ')[1].split(' ');
  return Number(fields[19 - 3]);
}

function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
    readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number),
  );
}

function commandOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return []; // it has exited
  }
}

type Line = Record<string, any>;

function jobLines(daemon: Daemon, jobId: string): Line[] {
  return (daemon.jsonLogs() as Line[]).filter((l) => l.job_id === jobId && !l.audit);
}

function lineOf(daemon: Daemon, jobId: string, msg: string): Line | undefined {
  return jobLines(daemon, jobId).find((l) => typeof l.msg === 'string' && l.msg.startsWith(msg));
}

describe('streaming convert: a cold image is written while it downloads (STREAM_CONVERT=auto)', () => {
  const t = s3Bed('stream-convert', { STREAM_CONVERT: 'auto', MINIO_RETRY_ATTEMPTS: '1' });

  async function submit(key: string, volume: string, extra: Record<string, unknown> = {}) {
    const submitted = await t.daemon.provision({
      image_url: `s3://${BUCKET}/${key}`,
      volume_name: volume,
      volume_size_gb: 1,
      image_type: 'qcow2',
      ...extra,
    });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    return submitted.body.job_id as string;
  }

  /** Follows the job's event stream to its end. */
  function follow(jobId: string): Promise<SseEvent[]> {
    return readSse(`${t.daemon.url}/api/v1/jobs/${jobId}/events`).done.then((d) => d.events);
  }

  /** The job streamed, and its convert started before its download ended. */
  function assertStreamed(jobId: string) {
    const path = lineOf(t.daemon, jobId, 'write path:');
    assert.equal(path?.write_path, 'streaming', JSON.stringify(path));
    const written = lineOf(t.daemon, jobId, 'image written to the volume while it downloaded');
    assert.ok(written, 'the job logs the streamed write');
    assert.ok(
      Date.parse(written.convert_started_at) < Date.parse(written.download_ended_at),
      `convert started (${written.convert_started_at}) before the download ended (${written.download_ended_at})`,
    );
    assert.ok(written.reads_that_waited > 0, 'some of qemu-img reads waited for the download');
    return written;
  }

  function assertNothingLeft(image: string) {
    assert.deepEqual(readdirSync(t.tmp), [], 'no partial download is left');
    assert.equal(existsSync(join(t.store, sha256File(image))), false, 'nothing entered the cache');
  }

  async function streamsByteExact(image: string, format: 'qcow2' | 'raw', name: string, rate = SLOW) {
    t.s3.bytesPerSecond = rate;
    await t.s3.put(`${name}.${format}`, image);
    const jobId = await submit(`${name}.${format}`, name, { image_type: format });
    const events = await follow(jobId);
    const done = await t.daemon.waitFinal(jobId);
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.cache_hit, false);
    assertVolumeHolds(join(t.volumes, `${name}.raw`), image, format, t.work.dir);
    assertStreamed(jobId);
    assert.equal(t.s3.downloadsOf(`${name}.${format}`).length, 1);
    assert.ok(existsSync(join(t.store, sha256File(image))), 'the verified image is in the cache');
    return { jobId, events };
  }

  it('streams a plain qcow2 byte-exact; SSE shows download and write counters, percent never goes down', async () => {
    const image = plainQcow2(t.work.dir, 'plain');
    const { events } = await streamsByteExact(image, 'qcow2', 'vm-plain');
    const stages = [...new Set(events.map((e) => e.data.progress.stage).filter(Boolean))];
    assert.deepEqual(stages, ['resolve', 'checking_cache', 'downloading', 'streaming', 'finalizing']);
    const percents = events.map((e) => e.data.progress.percent);
    for (let i = 1; i < percents.length; i++) assert.ok(percents[i] >= percents[i - 1], `${percents}`);
    const streaming = events.filter(
      (e) => e.data.status === 'running' && e.data.progress.write_bytes_total !== null,
    );
    const size = statSync(image).size;
    assert.ok(streaming.every((e) => e.data.progress.stage === 'streaming'));
    const during = streaming.filter(
      (e) => e.data.progress.bytes_processed < size && e.data.progress.write_bytes_processed > 0,
    );
    assert.ok(during.length > 0, 'an update showed bytes written before the download was whole');
    for (const e of streaming) {
      assert.equal(e.data.progress.bytes_total, size, `bytes_total: the download ${JSON.stringify(e)}`);
      assert.equal(
        e.data.progress.write_bytes_total,
        16 * 1024 * 1024,
        'write_bytes_total: the virtual size',
      );
    }
    const other = events.filter((e) => e.data.progress.stage !== 'streaming');
    assert.ok(other.every((e) => e.data.progress.write_bytes_processed === null));
  });

  it('streams a compressed qcow2 (-c) byte-exact', async () => {
    const image = compressedQcow2(t.work.dir, 'compressed');
    // About half the size of the plain one: slower, so the download still outlasts info and create.
    const { jobId } = await streamsByteExact(image, 'qcow2', 'vm-compressed', SLOW / 4);
    const written = lineOf(t.daemon, jobId, 'image written to the volume while it downloaded');
    assert.ok(written!.compressed_clusters > 0, 'qemu-img check counted compressed clusters');
  });

  it('streams a raw image byte-exact', async () => {
    const image = uniqueRaw(t.work.dir, 'plain-raw', 8);
    await streamsByteExact(image, 'raw', 'vm-raw');
  });

  it("leaves qemu-img's verdicts to the image's first warm job: it starts no qemu-img to inspect", async () => {
    const image = plainQcow2(t.work.dir, 'memo');
    await streamsByteExact(image, 'qcow2', 'vm-memo');
    const warm = await submit('vm-memo.qcow2', 'vm-memo-warm');
    const done = await t.daemon.waitFinal(warm);
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.cache_hit, true);
    const inspected = lineOf(t.daemon, warm, 'image inspected: safe to open');
    assert.equal(inspected?.qemu_img_ran, false, JSON.stringify(inspected));
    // As qemu-img reports it for the cached file: its allocated blocks.
    assert.equal(inspected.allocated_size, statSync(join(t.store, sha256File(image))).blocks * 512);
    assertVolumeHolds(join(t.volumes, 'vm-memo-warm.raw'), image, 'qcow2', t.work.dir);
  });

  it('streams a qcow2 whose clusters are out of file order (reads run ahead of the download) byte-exact', async () => {
    const image = outOfOrderQcow2(t.work.dir, 'reversed');
    await streamsByteExact(image, 'qcow2', 'vm-reversed');
  });

  it('a source that dies mid-stream fails the job source_failed: volume removed, no tmp left, nothing cached', async () => {
    const image = plainQcow2(t.work.dir, 'dies');
    t.s3.bytesPerSecond = SLOW;
    await t.s3.put('dies.qcow2', image);
    t.s3.cutNextDownload('dies.qcow2', Math.floor(statSync(image).size * 0.7));
    const jobId = await submit('dies.qcow2', 'vm-dies');
    await t.daemon.reachStage(jobId, 'streaming');
    const done = await t.daemon.waitFinal(jobId);
    assert.equal(done.status, 'failed');
    assert.equal(done.error_code, 'source_failed', done.error);
    assert.equal(existsSync(join(t.volumes, 'vm-dies.raw')), false, 'the volume this job created is removed');
    assertNothingLeft(image);
  });

  it('a checksum mismatch found at the end fails checksum_mismatch: volume removed, nothing cached', async () => {
    const image = plainQcow2(t.work.dir, 'mismatch');
    t.s3.bytesPerSecond = SLOW;
    await t.s3.put('mismatch.qcow2', image);
    const jobId = await submit('mismatch.qcow2', 'vm-mismatch', { checksum: `sha256:${'0'.repeat(64)}` });
    const done = await t.daemon.waitFinal(jobId);
    assert.equal(done.status, 'failed');
    assert.equal(done.error_code, 'checksum_mismatch', done.error);
    assert.equal(lineOf(t.daemon, jobId, 'write path:')?.write_path, 'streaming');
    assert.equal(
      existsSync(join(t.volumes, 'vm-mismatch.raw')),
      false,
      'the volume this job created is removed',
    );
    assertNothingLeft(image);
  });

  /** A cold job of a fresh plain qcow2 `<name>.qcow2` into `vm-<name>`, from a slow source, once it streams. */
  async function streamingJob(name: string): Promise<{ image: string; jobId: string }> {
    const image = plainQcow2(t.work.dir, name);
    t.s3.bytesPerSecond = SLOW / 4;
    await t.s3.put(`${name}.qcow2`, image);
    const jobId = await submit(`${name}.qcow2`, `vm-${name}`);
    await t.daemon.reachStage(jobId, 'streaming');
    return { image, jobId };
  }

  it('cancel mid-stream: cancelled, volume removed, no tmp left, nothing cached', async () => {
    const { image, jobId } = await streamingJob('cancel');
    const cancelled = await t.daemon.request('DELETE', `/api/v1/cancel/${jobId}`);
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    assert.equal(cancelled.body.status, 'cancelled');
    assert.equal(
      existsSync(join(t.volumes, 'vm-cancel.raw')),
      false,
      'the volume this job created is removed',
    );
    await waitFor('the partial download to be removed', () => readdirSync(t.tmp).length === 0, 10_000);
    assertNothingLeft(image);
  });

  it("runs the job's qemu-img and download thread JOB_NICE (10) below the daemon; its main thread keeps the daemon's priority", async () => {
    const { jobId } = await streamingJob('nice');
    const daemon = t.daemon.pid;
    const own = niceOf(`/proc/${daemon}/stat`);
    const qemuImg = await waitFor('the job to run qemu-img convert', () =>
      childrenOf(daemon).find((pid) => commandOf(pid)[0] === 'qemu-img' && commandOf(pid)[1] === 'convert'),
    );
    const qemuImgNice = niceOf(`/proc/${qemuImg}/stat`);
    const threads = readdirSync(`/proc/${daemon}/task`).map((tid) => ({
      tid: Number(tid),
      nice: niceOf(`/proc/${daemon}/task/${tid}/stat`),
    }));
    const cancelled = await t.daemon.request('DELETE', `/api/v1/cancel/${jobId}`);
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    assert.equal(qemuImgNice, own + 10, 'qemu-img runs 10 below the daemon');
    assert.equal(
      threads.find((th) => th.tid === daemon)?.nice,
      own,
      "the main thread keeps the daemon's priority",
    );
    assert.equal(
      threads.filter((th) => th.nice === own + 10).length,
      1,
      `one thread (the download's) runs 10 below the daemon: ${JSON.stringify(threads)}`,
    );
  });

  it('two jobs for the same cold image share one download and both stream it', async () => {
    const image = plainQcow2(t.work.dir, 'shared');
    // Slow enough that the second job joins the download well before it ends.
    t.s3.bytesPerSecond = SLOW / 4;
    await t.s3.put('shared.qcow2', image);
    const first = await submit('shared.qcow2', 'vm-shared-1');
    await t.daemon.reachStage(first, 'streaming');
    const second = await submit('shared.qcow2', 'vm-shared-2');
    const [a, b] = await Promise.all([t.daemon.waitFinal(first), t.daemon.waitFinal(second)]);
    assert.equal(a.status, 'completed', a.error);
    assert.equal(b.status, 'completed', b.error);
    assert.equal(t.s3.downloadsOf('shared.qcow2').length, 1, 'one download for both jobs');
    assertStreamed(first);
    assert.equal(lineOf(t.daemon, second, 'write path:')?.write_path, 'streaming');
    assertVolumeHolds(join(t.volumes, 'vm-shared-1.raw'), image, 'qcow2', t.work.dir);
    assertVolumeHolds(join(t.volumes, 'vm-shared-2.raw'), image, 'qcow2', t.work.dir);
  });
  // The paths that do not stream (cache hit, wrappers, other formats, no length, STREAM_CONVERT=off):
  // stream-fallback.spec.ts.
});

describe('streaming convert of an object replaced while it streams', () => {
  const t = s3Bed('stream-replace', { STREAM_CONVERT: 'auto', MINIO_RETRY_BACKOFF_MS: '2000' });

  it('stops streaming when the download restarts from zero, and writes the new version whole from the finished file', async () => {
    const first = plainQcow2(t.work.dir, 'v1', 8);
    const second = plainQcow2(t.work.dir, 'v2', 8);
    t.s3.bytesPerSecond = SLOW;
    await t.s3.put('moving.qcow2', first);
    t.s3.cutNextDownload('moving.qcow2', 3 * 1024 * 1024);
    const submitted = await t.daemon.provision({
      image_url: `s3://${BUCKET}/moving.qcow2`,
      volume_name: 'vm-moving',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    const jobId = submitted.body.job_id as string;
    await t.daemon.reachStage(jobId, 'streaming');
    await waitFor('the first, cut download', () => t.s3.downloadsOf('moving.qcow2').length === 1);
    await t.s3.put('moving.qcow2', second); // during the 2 s back-off
    const done = await t.daemon.waitFinal(jobId);
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.image_sha256, sha256File(second));
    assertVolumeHolds(join(t.volumes, 'vm-moving.raw'), second, 'qcow2', t.work.dir);
    const paths = jobLines(t.daemon, jobId).filter((l) => String(l.msg).startsWith('write path:'));
    assert.deepEqual(
      paths.map((l) => l.write_path),
      ['streaming', 'download_then_convert'],
    );
    assert.match(paths[1].reason, /streaming stopped \(.*restarted from its first byte.*\)/);
  });
});

describe('streaming convert: reads far ahead of the download come by range requests', () => {
  const t = s3Bed('stream-ahead', {
    STREAM_CONVERT: 'auto',
    DOWNLOAD_STALL_SECONDS: '3',
    MINIO_RETRY_BACKOFF_MS: '100',
  });
  const www = join(t.work.dir, 'www');
  let server: ImageServer;
  let image = '';

  before(async () => {
    mkdirSync(www);
    server = await new ImageServer(www).start();
    image = farL2Qcow2(t.work.dir, 'far');
    assert.ok(l2Offset(image, 1) > 40 * MIB, `the second L2 table is at ${l2Offset(image, 1)}`);
  });

  after(() => server?.stop());

  it('writes while the download stands still 40 MiB short of an L2 table; completes byte-exact', async () => {
    await t.s3.put('far.qcow2', image);
    // The first GET goes silent after 8 MiB, for DOWNLOAD_STALL_SECONDS; then the download resumes.
    t.s3.stallNext('GET', 'far.qcow2', { afterBytes: 8 * MIB, times: 1 });
    const submitted = await t.daemon.provision({
      image_url: `s3://${BUCKET}/far.qcow2`,
      volume_name: 'vm-far',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const jobId = submitted.body.job_id as string;
    const events = await readSse(`${t.daemon.url}/api/v1/jobs/${jobId}/events`).done.then((d) => d.events);
    const done = await t.daemon.waitFinal(jobId);
    assert.equal(done.status, 'completed', done.error);
    assertVolumeHolds(join(t.volumes, 'vm-far.raw'), image, 'qcow2', t.work.dir);
    const whileStill = events.filter(
      (e) => e.data.progress.bytes_processed <= 8 * MIB && e.data.progress.write_bytes_processed > 0,
    );
    assert.ok(whileStill.length > 0, 'bytes were written while the download stood at 8 MiB');
    const written = lineOf(t.daemon, jobId, 'image written to the volume while it downloaded');
    assert.ok(written!.reads_fetched_ahead >= 1, JSON.stringify(written));
    assert.equal(written!.range_requests_failed, 0);
    const ranged = t.s3.downloadsOf('far.qcow2').filter((r) => /^bytes=\d+-\d+$/.test(r.range ?? ''));
    assert.ok(
      ranged.some((r) => r.range === `bytes=${l2Offset(image, 1)}-${l2Offset(image, 1) + 65535}`),
      `the L2 table was fetched by a range request: ${ranged.map((r) => r.range)}`,
    );
    assert.ok(
      ranged.every((r) => r.ifMatch),
      'each range request names the version (If-Match)',
    );
  });

  it('fetched bytes that differ from the download are caught: the volume is written again from the verified file', async () => {
    // A cache in front of the server answers ranges with an older version: two entries of the
    // far L2 table swapped (the disk's clusters at 512 MiB and 512 MiB + 64 KiB trade places).
    const stale = join(t.work.dir, 'far-stale.qcow2');
    copyFileSync(image, stale);
    const at = l2Offset(image, 1);
    const table = readFileSync(image).subarray(at, at + 16);
    const fd = openSync(stale, 'r+');
    writeSync(fd, Buffer.concat([table.subarray(8, 16), table.subarray(0, 8)]), 0, 16, at);
    closeSync(fd);
    await t.daemon.request('DELETE', `/api/v1/cache/${sha256File(image)}`); // cached by the test above
    copyFileSync(image, join(www, 'far.qcow2'));
    server.staleRanges.set('/far.qcow2', stale);
    server.stall('/far.qcow2', { afterBytes: 8 * MIB, times: 1 });
    const submitted = await t.daemon.provision({
      image_url: `${server.url}/far.qcow2`,
      checksum: `sha256:${sha256File(image)}`,
      volume_name: 'vm-far-stale',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const jobId = submitted.body.job_id as string;
    const done = await t.daemon.waitFinal(jobId);
    assert.equal(done.status, 'completed', done.error);
    assertVolumeHolds(join(t.volumes, 'vm-far-stale.raw'), image, 'qcow2', t.work.dir);
    const paths = jobLines(t.daemon, jobId).filter((l) => String(l.msg).startsWith('write path:'));
    assert.deepEqual(
      paths.map((l) => l.write_path),
      ['streaming', 'download_then_convert'],
    );
    assert.match(
      paths[1].reason,
      /streaming stopped \(bytes fetched ahead of the download at offset \d+ differ/,
    );
  });
});
