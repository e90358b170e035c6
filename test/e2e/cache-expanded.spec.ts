import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { BUCKET } from '../harness/s3-server';
import { waitFor } from '../harness/wait';
import { rawReference, sameBytes, sha256File, slowQcow2, uniqueQcow2 } from '../fixtures/images';
import { s3Bed, type S3Bed } from '../harness/s3-bed';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const EXPANDED = 'expanded compressed qcow2 into the cache';
/**
 * The copy runs at nice 19 and the lowest best-effort I/O priority, after its image's fsync: while
 * other specs write gigabytes in parallel it took over 30 s for 8 MiB in one CI run (under 1 s alone).
 */
const EXPANSION_TIMEOUT_MS = 180_000;

/**
 * A qcow2 whose clusters are compressed (`qemu-img convert -c`) and that no other test shares:
 * `dataMiB` of data (a random first MiB, then a pattern), about 1 MiB compressed.
 */
function compressedQcow2(dir: string, name: string, dataMiB = 8): string {
  const plain = uniqueQcow2(dir, `${name}-plain`, dataMiB);
  const out = join(dir, `${name}.qcow2`);
  execFileSync('qemu-img', ['convert', '-c', '-f', 'qcow2', '-O', 'qcow2', plain, out], { stdio: 'pipe' });
  rmSync(plain);
  return out;
}

function compressedClusters(path: string): number {
  const report = JSON.parse(
    execFileSync('qemu-img', ['check', '--output=json', '-f', 'qcow2', path]).toString(),
  ) as Record<string, number>;
  return report['compressed-clusters'] ?? 0;
}

type Bed = S3Bed;

async function provision(t: Bed, key: string, volume: string) {
  const submitted = await t.daemon.provision({
    image_url: `s3://${BUCKET}/${key}`,
    volume_name: volume,
    volume_size_gb: 1,
    image_type: 'qcow2',
  });
  assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
  return t.daemon.waitFinal(submitted.body.job_id);
}

function assertVolumeHolds(t: Bed, volume: string, image: string) {
  const path = join(t.volumes, `${volume}.raw`);
  assert.equal(statSync(path).size, GIB);
  const reference = rawReference(image, 'qcow2', t.work.dir);
  truncateSync(reference, GIB);
  assert.ok(sameBytes(path, reference), `${path} differs from the image`);
}

async function listing(t: Bed, sha256: string) {
  const { body } = await t.daemon.request('GET', '/api/v1/cache');
  return { body, entry: body.entries.find((e: { sha256: string }) => e.sha256 === sha256) };
}

function inspectedLine(t: Bed, jobId: string) {
  return t.daemon.jsonLogs().find((l) => l.job_id === jobId && l.msg === 'image inspected: safe to open');
}

describe('compressed qcow2: an expanded copy in the cache after the first job', () => {
  const t = s3Bed('expanded');
  let image = '';
  let sha = '';

  before(() => {
    image = compressedQcow2(t.work.dir, 'zc');
    sha = sha256File(image);
    assert.ok(compressedClusters(image) > 0, 'the fixture must have compressed clusters');
  });

  it('provisions it byte-exact, then writes <hex>.expanded in the background without compressed clusters', async () => {
    await t.s3.put('zc.qcow2', image);
    const cold = await provision(t, 'zc.qcow2', 'vm-zc-1');
    assert.equal(cold.status, 'completed', cold.error);
    assert.equal(cold.cache_hit, false);
    assertVolumeHolds(t, 'vm-zc-1', image);
    // Cold, so written while it downloaded (STREAM_CONVERT=auto, the default): qemu-img read the
    // compressed clusters of the download itself; `qemu-img check` of the finished file counted them.
    const line = t.daemon
      .jsonLogs()
      .find((l) => l.job_id === cold.job_id && l.msg === 'image written to the volume while it downloaded');
    assert.ok(Number(line?.compressed_clusters) > 0, JSON.stringify(line));

    const made = await waitFor(
      'the expanded copy',
      () => t.daemon.jsonLogs().find((l) => l.msg === EXPANDED && l.sha256 === sha),
      EXPANSION_TIMEOUT_MS,
    );
    const expanded = join(t.store, `${sha}.expanded`);
    assert.ok(existsSync(expanded));
    assert.equal(compressedClusters(expanded), 0);
    assert.equal(made.expanded_bytes, statSync(expanded).size);
    assert.deepEqual(readdirSync(t.tmp), [], 'no partial copy is left in tmp/');
    // The image as published stays what it was; the copy counts against CACHE_MAX_BYTES.
    assert.equal(sha256File(join(t.store, sha)), sha);
    const { body, entry } = await listing(t, sha);
    assert.equal(entry.expanded_bytes, statSync(expanded).size);
    assert.equal(
      body.total_bytes,
      body.entries.reduce(
        (sum: number, e: { size: number; expanded_bytes: number }) => sum + e.size + e.expanded_bytes,
        0,
      ),
    );
  });

  it('serves the next job from the expanded copy, byte-exact, without expanding again', async () => {
    const warm = await provision(t, 'zc.qcow2', 'vm-zc-2');
    assert.equal(warm.status, 'completed', warm.error);
    assert.equal(warm.cache_hit, true);
    assertVolumeHolds(t, 'vm-zc-2', image);
    const line = inspectedLine(t, warm.job_id);
    assert.equal(line?.read_expanded_copy, true, JSON.stringify(line));
    assert.equal(line?.compressed_clusters, 0);
    assert.equal(warm.image_path, join(t.store, sha), 'the job names the cached image as published');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(t.daemon.jsonLogs().filter((l) => l.msg === EXPANDED && l.sha256 === sha).length, 1);
  });

  it('at start, removes a partial copy left in tmp/ and an expanded copy without its image, and keeps counting a kept one', async () => {
    const { entry: before } = await listing(t, sha);
    await t.daemon.stop();
    const partial = join(t.tmp, `${sha}.6f1c2d3e-0000-4000-8000-000000000000.expanding`);
    writeFileSync(partial, 'half an expanded copy');
    const orphan = join(t.store, `${'e'.repeat(64)}.expanded`);
    writeFileSync(orphan, 'an expanded copy whose image is gone');
    t.daemon = await new Daemon({ dir: t.work.dir, env: t.s3.daemonEnv() }).start();
    assert.ok(!existsSync(partial));
    assert.ok(!existsSync(orphan));
    assert.ok(existsSync(join(t.store, `${sha}.expanded`)));
    const { entry } = await listing(t, sha);
    assert.equal(entry.expanded_bytes, before.expanded_bytes);
    const again = await provision(t, 'zc.qcow2', 'vm-zc-3');
    assert.equal(again.status, 'completed', again.error);
    assert.equal(inspectedLine(t, again.job_id)?.read_expanded_copy, true);
    assertVolumeHolds(t, 'vm-zc-3', image);
  });

  it('deletes the expanded copy together with its cache entry', async () => {
    const deleted = await t.daemon.request('DELETE', `/api/v1/cache/${sha}`);
    assert.equal(deleted.status, 204);
    assert.ok(!existsSync(join(t.store, sha)));
    assert.ok(!existsSync(join(t.store, `${sha}.expanded`)));
    assert.equal((await listing(t, sha)).entry, undefined);
  });
});

describe('compressed qcow2: expanded copies and CACHE_MAX_BYTES', () => {
  // Room for one compressed image (~1 MiB) with its 8 MiB expanded copy, not for a second 8 MiB image too.
  const t = s3Bed('expanded-limits', { CACHE_MAX_BYTES: String(12 * MIB) });

  it('makes no copy that would not fit with its image, and says so', async () => {
    const big = compressedQcow2(t.work.dir, 'zbig', 16);
    await t.s3.put('zbig.qcow2', big);
    const done = await provision(t, 'zbig.qcow2', 'vm-zbig');
    assert.equal(done.status, 'completed', done.error);
    await waitFor('the refusal to expand', () =>
      t.daemon.jsonLogs().find((l) => String(l.msg).includes('would exceed CACHE_MAX_BYTES')),
    );
    assert.ok(!existsSync(join(t.store, `${sha256File(big)}.expanded`)));
    assert.equal((await listing(t, sha256File(big))).entry.expanded_bytes, 0);
  });

  it('counts an expanded copy against CACHE_MAX_BYTES, and evicts it with its image', async () => {
    const image = compressedQcow2(t.work.dir, 'zsmall', 8);
    const sha = sha256File(image);
    await t.s3.put('zsmall.qcow2', image);
    assert.equal((await provision(t, 'zsmall.qcow2', 'vm-zsmall')).status, 'completed');
    await waitFor(
      'the expanded copy',
      () => t.daemon.jsonLogs().find((l) => l.msg === EXPANDED && l.sha256 === sha),
      EXPANSION_TIMEOUT_MS,
    );
    // An 8 MiB image more: 1 + 8 + 8 MiB do not fit in 12, so the least recently used goes.
    const other = uniqueQcow2(t.work.dir, 'plain8', 8);
    await t.s3.put('plain8.qcow2', other);
    assert.equal((await provision(t, 'plain8.qcow2', 'vm-plain8')).status, 'completed');
    await waitFor('the eviction', () =>
      t.daemon.jsonLogs().find((l) => l.msg === 'cache eviction' && l.sha256 === sha),
    );
    assert.ok(!existsSync(join(t.store, sha)));
    assert.ok(!existsSync(join(t.store, `${sha}.expanded`)));
  });
});

describe('a cache lookup waits only for the pending fsync of its own image', () => {
  // Small enough that slow.qcow2 gets no expanded copy: this block is about the deferred fsync.
  const t = s3Bed('settle-own', { CACHE_MAX_BYTES: String(100 * MIB), MAX_CONCURRENT_JOBS: '2' });

  it('serves a cache hit of another image without forcing the fsync of a download still being read', async () => {
    const cached = uniqueQcow2(t.work.dir, 'hit');
    await t.s3.put('hit.qcow2', cached);
    assert.equal((await provision(t, 'hit.qcow2', 'vm-hit-1')).status, 'completed');
    await waitFor('hit.qcow2 to be durable', () =>
      t.daemon.jsonLogs().some((l) => l.msg === 'cache file made durable' && l.sha256 === sha256File(cached)),
    );

    // A new download whose job converts for seconds (compressed clusters): its fsync waits for it.
    await t.s3.put('slow.qcow2', slowQcow2());
    const slowSha = sha256File(slowQcow2());
    const slow = await t.daemon.provision({
      image_url: `s3://${BUCKET}/slow.qcow2`,
      volume_name: 'vm-slow',
      volume_size_gb: 2,
      image_type: 'qcow2',
    });
    // Cold, so it is written while it downloads (stage `streaming`); the 2 MB download ends long
    // before qemu-img does, and its file is in the cache, not yet durable, while the job reads it.
    await t.daemon.reachStage(slow.body.job_id, 'streaming');
    await waitFor('slow.qcow2 to be downloaded', () =>
      t.daemon.jsonLogs().some((l) => l.job_id === slow.body.job_id && l.msg === 'download done'),
    );
    const durable = () =>
      t.daemon.jsonLogs().some((l) => l.msg === 'cache file made durable' && l.sha256 === slowSha);

    const hit = await provision(t, 'hit.qcow2', 'vm-hit-2');
    assert.equal(hit.status, 'completed', hit.error);
    assert.equal(hit.cache_hit, true);
    assert.equal(
      (await t.daemon.status(slow.body.job_id)).body.status,
      'running',
      'slow.qcow2 converts for longer',
    );
    assert.ok(!durable(), 'the cache hit forced the fsync of another image that a job still reads');

    assert.equal((await t.daemon.waitFinal(slow.body.job_id, 120_000)).status, 'completed');
    await waitFor('slow.qcow2 to be durable after its job', durable);
  });
});
