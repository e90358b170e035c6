import assert from 'node:assert/strict';
import {
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { BUCKET } from '../harness/s3-server';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { rawReference, sameBytes, sha256File, slowQcow2, smallQcow2, uniqueQcow2 } from '../fixtures/images';
import { s3Bed } from '../harness/s3-bed';

const GIB = 1024 ** 3;

async function provision(daemon: Daemon, body: Record<string, unknown>) {
  const submitted = await daemon.provision({ volume_size_gb: 1, image_type: 'qcow2', ...body });
  assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
  return daemon.waitFinal(submitted.body.job_id);
}

function assertVolumeHolds(volume: string, image: string, dir: string, size = GIB) {
  assert.equal(statSync(volume).size, size);
  const reference = rawReference(image, 'qcow2', dir);
  truncateSync(reference, size);
  assert.ok(sameBytes(volume, reference), `${volume} differs from the image`);
}

describe('S3 source and the verified cache', () => {
  const t = s3Bed('s3');

  it('provisions from s3://bucket/key byte-exact, then serves the same image from the cache without a GET', async () => {
    const image = uniqueQcow2(t.work.dir, 'a');
    await t.s3.put('os/a.qcow2', image);
    const cold = await provision(t.daemon, { image_url: `s3://${BUCKET}/os/a.qcow2`, volume_name: 'vm-a1' });
    assert.equal(cold.status, 'completed', cold.error);
    assert.equal(cold.cache_hit, false);
    assert.equal(cold.checksum_verified, false, 'no checksum was given: the image is unverified');
    assert.equal(cold.image_sha256, sha256File(image));
    assert.equal(cold.image_path, join(t.cacheDir, 'sha256', sha256File(image)));
    assertVolumeHolds(join(t.volumes, 'vm-a1.raw'), image, t.work.dir);
    assert.equal(t.s3.downloadsOf('os/a.qcow2').length, 1);

    const warm = await provision(t.daemon, { image_url: `s3://${BUCKET}/os/a.qcow2`, volume_name: 'vm-a2' });
    assert.equal(warm.status, 'completed', warm.error);
    assert.equal(warm.cache_hit, true);
    assert.equal(t.s3.downloadsOf('os/a.qcow2').length, 1, 'a cache hit must not download');
    assertVolumeHolds(join(t.volumes, 'vm-a2.raw'), image, t.work.dir);
  });

  it('provisions from the path-style http://<MINIO_ENDPOINT>/bucket/key URL, signed', async () => {
    const image = uniqueQcow2(t.work.dir, 'b');
    await t.s3.put('b.qcow2', image);
    const done = await provision(t.daemon, {
      image_url: `http://${t.s3.endpoint}/${BUCKET}/b.qcow2`,
      volume_name: 'vm-b',
    });
    assert.equal(done.status, 'completed', done.error);
    assertVolumeHolds(join(t.volumes, 'vm-b.raw'), image, t.work.dir);
    const get = t.s3.downloadsOf('b.qcow2')[0];
    assert.match(get.query, /X-Amz-Signature=/, 'the download must be signed (SigV4)');
  });

  const sidecars: [string, (hex: string) => string][] = [
    ['a bare digest', (hex) => `${hex}\n`],
    ['an upper-case digest', (hex) => hex.toUpperCase()],
    ['sha256sum output', (hex) => `${hex}  side.qcow2\n`],
    ['sha256sum binary-mode output', (hex) => `${hex} *side.qcow2\n`],
    [
      'a multi-line sha256sum file',
      (hex) => `${'0'.repeat(64)}  other.qcow2\n${hex}  side.qcow2\n${'f'.repeat(64)}  third.img\n`,
    ],
    ['BSD style', (hex) => `SHA256 (side.qcow2) = ${hex}\n`],
  ];
  for (const [format, write] of sidecars) {
    it(`verifies the image against a sidecar holding ${format}`, async () => {
      const key = `side-${format.replace(/\W+/g, '-')}/side.qcow2`;
      const image = uniqueQcow2(t.work.dir, `side-${sidecars.findIndex(([f]) => f === format)}`);
      await t.s3.put(key, image);
      await t.s3.putText(`${key}.sha256`, write(sha256File(image)));
      const done = await provision(t.daemon, {
        image_url: `s3://${BUCKET}/${key}`,
        volume_name: `vm-side-${sidecars.findIndex(([f]) => f === format)}`,
      });
      assert.equal(done.status, 'completed', done.error);
      assert.equal(done.checksum_verified, true);
      assert.equal(done.image_sha256, sha256File(image));
    });
  }

  it('fails on a wrong digest with both digests, and keeps nothing', async () => {
    const image = uniqueQcow2(t.work.dir, 'wrong');
    await t.s3.put('wrong.qcow2', image);
    const wrong = 'ab'.repeat(32);
    const done = await provision(t.daemon, {
      image_url: `s3://${BUCKET}/wrong.qcow2`,
      volume_name: 'vm-wrong',
      checksum: `sha256:${wrong}`,
    });
    assert.equal(done.status, 'failed');
    assert.equal(done.error_code, 'checksum_mismatch');
    assert.match(done.error, new RegExp(sha256File(image)));
    assert.match(done.error, new RegExp(wrong));
    assert.ok(!existsSync(join(t.cacheDir, 'sha256', sha256File(image))));
    const cache = await t.daemon.request('GET', '/api/v1/cache');
    assert.ok(!cache.body.entries.some((e: { sha256: string }) => e.sha256 === sha256File(image)));
    assert.deepEqual(readdirSync(join(t.cacheDir, 'tmp')), []);
    assert.ok(!existsSync(join(t.volumes, 'vm-wrong.raw')));
  });

  it('fails on a malformed sidecar, quoting it', async () => {
    const image = uniqueQcow2(t.work.dir, 'badside');
    await t.s3.put('badside.qcow2', image);
    await t.s3.putText('badside.qcow2.sha256', 'this is not a digest\n');
    const done = await provision(t.daemon, {
      image_url: `s3://${BUCKET}/badside.qcow2`,
      volume_name: 'vm-badside',
    });
    assert.equal(done.status, 'failed');
    assert.equal(done.error_code, 'checksum_unavailable');
    assert.match(done.error, /this is not a digest/);
    assert.equal(
      t.s3.downloadsOf('badside.qcow2').length,
      0,
      'nothing is downloaded against a broken sidecar',
    );
  });

  it('refuses s3:// objects that do not exist, without retrying', async () => {
    const done = await provision(t.daemon, {
      image_url: `s3://${BUCKET}/nope.qcow2`,
      volume_name: 'vm-nope',
    });
    assert.equal(done.status, 'failed');
    assert.match(done.error, /does not exist/);
    assert.equal(t.s3.requestsFor('nope.qcow2').length, 1);
  });

  it('shares one download among five concurrent jobs for one uncached image', async () => {
    const image = uniqueQcow2(t.work.dir, 'shared', 48);
    await t.s3.put('shared.qcow2', image);
    const ids = await Promise.all(
      [0, 1, 2, 3, 4].map(async (i) => {
        const r = await t.daemon.provision({
          image_url: `s3://${BUCKET}/shared.qcow2`,
          volume_name: `vm-shared-${i}`,
          volume_size_gb: 1,
          image_type: 'qcow2',
        });
        return r.body.job_id as string;
      }),
    );
    const finals = await Promise.all(ids.map((id) => t.daemon.waitFinal(id)));
    assert.ok(
      finals.every((f) => f.status === 'completed'),
      JSON.stringify(finals.map((f) => f.error)),
    );
    assert.equal(t.s3.downloadsOf('shared.qcow2').length, 1);
    assert.ok(
      finals.filter((f) => !f.cache_hit).length >= 2,
      'at least two jobs should have shared the download',
    );
  });

  it('resumes a cut transfer with a Range request and lands byte-exact', async () => {
    const image = uniqueQcow2(t.work.dir, 'cut', 24);
    await t.s3.put('cut.qcow2', image);
    t.s3.cutNextDownload('cut.qcow2', 5 * 1024 * 1024);
    const done = await provision(t.daemon, { image_url: `s3://${BUCKET}/cut.qcow2`, volume_name: 'vm-cut' });
    assert.equal(done.status, 'completed', done.error);
    const gets = t.s3.downloadsOf('cut.qcow2');
    assert.equal(gets.length, 2);
    assert.equal(gets[0].range, undefined);
    assert.match(gets[1].range ?? '', /^bytes=\d+-$/);
    assert.ok(Number(/bytes=(\d+)-/.exec(gets[1].range!)![1]) > 0);
    assert.match(gets[1].ifMatch ?? '', /^"[0-9a-f]+"$/, 'the resume is guarded by the etag');
    assert.equal(done.image_sha256, sha256File(image));
    assertVolumeHolds(join(t.volumes, 'vm-cut.raw'), image, t.work.dir);
  });

  it('fills the cache with a prefetch job and lists the entry', async () => {
    const image = uniqueQcow2(t.work.dir, 'pre');
    await t.s3.put('pre.qcow2', image);
    const submitted = await t.daemon.request('POST', '/api/v1/cache/prefetch', {
      image_url: `s3://${BUCKET}/pre.qcow2`,
    });
    assert.equal(submitted.status, 202);
    const done = await t.daemon.waitFinal(submitted.body.job_id);
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.kind, 'prefetch');
    assert.equal(done.volume_name, null);
    const { body } = await t.daemon.request('GET', '/api/v1/cache');
    const entry = body.entries.find((e: { sha256: string }) => e.sha256 === sha256File(image));
    assert.ok(entry);
    assert.equal(entry.size, statSync(image).size);
    assert.equal(entry.format, 'qcow2');
    assert.equal(entry.sources[0].url, `s3://${BUCKET}/pre.qcow2`);
    assert.equal(body.total_entries, body.entries.length);
    assert.ok(body.hits >= 1 && body.misses >= 1);

    const warm = await provision(t.daemon, { image_url: `s3://${BUCKET}/pre.qcow2`, volume_name: 'vm-pre' });
    assert.equal(warm.cache_hit, true);
    assert.equal(t.s3.downloadsOf('pre.qcow2').length, 1);
  });

  it('deletes a cache entry on request (204, then 404)', async () => {
    const { body } = await t.daemon.request('GET', '/api/v1/cache');
    const sha = body.entries[0].sha256;
    assert.equal((await t.daemon.request('DELETE', `/api/v1/cache/${sha}`)).status, 204);
    assert.ok(!existsSync(join(t.cacheDir, 'sha256', sha)));
    const again = await t.daemon.request('DELETE', `/api/v1/cache/${sha}`);
    assert.equal(again.status, 404);
    assert.equal(again.body.error_code, 'cache_entry_not_found');
  });
});

describe('S3 failures', () => {
  const t = s3Bed('s3-fail', { MINIO_ACCESS_KEY: 'UNKNOWNKEY', MINIO_RETRY_ATTEMPTS: '4' });

  it('fails with a clear message for an unknown access key, without a retry storm', async () => {
    const image = uniqueQcow2(t.work.dir, 'denied');
    await t.s3.put('denied.qcow2', image);
    const done = await provision(t.daemon, {
      image_url: `s3://${BUCKET}/denied.qcow2`,
      volume_name: 'vm-denied',
    });
    assert.equal(done.status, 'failed');
    assert.match(done.error, /access key/i);
    // The test's own upload is a PUT; the daemon's requests are the rest.
    const daemonRequests = t.s3.requestsFor('denied.qcow2').filter((r) => r.method !== 'PUT');
    assert.equal(daemonRequests.length, 1, JSON.stringify(daemonRequests));
  });

  it('refuses s3:// URLs at submit when no endpoint is configured', async () => {
    const work = makeWorkdir('no-s3');
    const daemon = await new Daemon({ dir: work.dir }).start();
    try {
      const response = await daemon.provision({
        image_url: 's3://images/x.qcow2',
        volume_name: 'vm',
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.equal(response.status, 400);
      assert.match(response.body.message, /MINIO_ENDPOINT/);
    } finally {
      await daemon.stop();
      work.cleanup();
    }
  });
});

describe('an object replaced between download attempts', () => {
  const t = s3Bed('s3-replace', { MINIO_RETRY_BACKOFF_MS: '2000' });

  it('restarts from zero instead of mixing versions, and lands the new version byte-exact', async () => {
    const first = uniqueQcow2(t.work.dir, 'v1', 16);
    const second = uniqueQcow2(t.work.dir, 'v2', 16);
    await t.s3.put('moving.qcow2', first);
    t.s3.cutNextDownload('moving.qcow2', 3 * 1024 * 1024);
    const submitted = await t.daemon.provision({
      image_url: `s3://${BUCKET}/moving.qcow2`,
      volume_name: 'vm-moving',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    await waitFor('the first, cut download', () => t.s3.downloadsOf('moving.qcow2').length === 1);
    await t.s3.put('moving.qcow2', second); // during the 2 s back-off
    const done = await t.daemon.waitFinal(submitted.body.job_id);
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.image_sha256, sha256File(second));
    assertVolumeHolds(join(t.volumes, 'vm-moving.raw'), second, t.work.dir);
    const gets = t.s3.downloadsOf('moving.qcow2');
    assert.ok(gets.length >= 2);
    assert.equal(gets.at(-1)!.range, undefined, 'the last GET must read the new version from byte 0');
  });
});

describe('cache eviction and limits', () => {
  // Room for about two of the 8 MiB images below.
  const t = s3Bed('evict', { CACHE_MAX_BYTES: String(18 * 1024 * 1024), MAX_CONCURRENT_JOBS: '2' });

  async function prefetch(key: string): Promise<any> {
    const submitted = await t.daemon.request('POST', '/api/v1/cache/prefetch', {
      image_url: `s3://${BUCKET}/${key}`,
    });
    return t.daemon.waitFinal(submitted.body.job_id);
  }
  const cached = async () =>
    ((await t.daemon.request('GET', '/api/v1/cache')).body.entries as { sha256: string }[]).map(
      (e) => e.sha256,
    );

  it('evicts the least recently used image when CACHE_MAX_BYTES is exceeded', async () => {
    const images = ['e1', 'e2', 'e3'].map((name) => uniqueQcow2(t.work.dir, name, 8));
    for (const [i, image] of images.entries()) await t.s3.put(`e${i + 1}.qcow2`, image);
    assert.equal((await prefetch('e1.qcow2')).status, 'completed');
    assert.equal((await prefetch('e2.qcow2')).status, 'completed');
    // Use e1 again: now e2 is the least recently used.
    const used = await provision(t.daemon, { image_url: `s3://${BUCKET}/e1.qcow2`, volume_name: 'vm-e1' });
    assert.equal(used.cache_hit, true);
    assert.equal((await prefetch('e3.qcow2')).status, 'completed');
    // e3 is indexed, and the cache evicted, once it is durable: just after its job (not before).
    await waitFor('the eviction', () =>
      t.daemon.jsonLogs().some((l) => l.msg === 'cache eviction' && l.sha256 === sha256File(images[1])),
    );
    const shas = await cached();
    assert.ok(shas.includes(sha256File(images[0])), 'e1 was used recently and must stay');
    assert.ok(!shas.includes(sha256File(images[1])), 'e2 is the least recently used and must go');
    assert.ok(shas.includes(sha256File(images[2])));
    assert.ok(
      t.daemon.jsonLogs().some((l) => l.msg === 'cache eviction' && l.sha256 === sha256File(images[1])),
    );
  });

  it('never evicts an image a running job reads, and refuses to delete it (409)', async () => {
    await t.s3.put('busy.qcow2', slowQcow2());
    const busy = sha256File(slowQcow2());
    const submitted = await t.daemon.provision({
      image_url: `s3://${BUCKET}/busy.qcow2`,
      volume_name: 'vm-busy',
      volume_size_gb: 2,
      image_type: 'qcow2',
    });
    // Cold, so written while it downloads: its 2 MB are verified and in the store at once, and
    // qemu-img reads them for seconds more in stage `streaming`.
    await waitFor('the conversion to start', async () => {
      const { stage } = (await t.daemon.status(submitted.body.job_id)).body.progress;
      const downloaded = t.daemon
        .jsonLogs()
        .some((l) => l.job_id === submitted.body.job_id && l.msg === 'download done');
      return stage === 'converting' || (stage === 'streaming' && downloaded) || undefined;
    });
    const deleting = await t.daemon.request('DELETE', `/api/v1/cache/${busy}`);
    assert.equal(deleting.status, 409);
    assert.equal(deleting.body.error_code, 'cache_entry_in_use');
    // Two more images push the cache over its limit while the busy one is read.
    for (const name of ['f1', 'f2']) {
      await t.s3.put(`${name}.qcow2`, uniqueQcow2(t.work.dir, name, 8));
      await prefetch(`${name}.qcow2`);
    }
    assert.ok((await cached()).includes(busy), 'an image in use was evicted');
    assert.equal((await t.daemon.waitFinal(submitted.body.job_id)).status, 'completed');
  });

  it('uses an image larger than CACHE_MAX_BYTES once without caching it, and says so', async () => {
    const big = uniqueQcow2(t.work.dir, 'big', 24);
    await t.s3.put('big.qcow2', big);
    const done = await provision(t.daemon, { image_url: `s3://${BUCKET}/big.qcow2`, volume_name: 'vm-big' });
    assert.equal(done.status, 'completed', done.error);
    assertVolumeHolds(join(t.volumes, 'vm-big.raw'), big, t.work.dir);
    assert.ok(!(await cached()).includes(sha256File(big)));
    await waitFor(
      'the used-once file to be removed',
      () => readdirSync(join(t.cacheDir, 'tmp')).length === 0,
    );
    assert.ok(t.daemon.jsonLogs().some((l) => String(l.msg).includes('used once and not cached')));
  });

  it('reconciles the cache at start: stale partial files and index rows without a file are removed, and logged', async () => {
    const before = await cached();
    assert.ok(before.length > 0);
    await t.daemon.stop();
    writeFileSync(join(t.cacheDir, 'tmp', 'stale.part'), 'half a download');
    const missing = before[0];
    rmSync(join(t.cacheDir, 'sha256', missing));
    writeFileSync(join(t.cacheDir, 'sha256', 'f'.repeat(64)), 'a file nobody indexed');
    t.daemon = await new Daemon({
      dir: t.work.dir,
      env: { ...t.s3.daemonEnv(), CACHE_MAX_BYTES: String(18 * 1024 * 1024) },
    }).start();
    assert.deepEqual(readdirSync(join(t.cacheDir, 'tmp')), []);
    assert.ok(!(await cached()).includes(missing));
    assert.ok(!existsSync(join(t.cacheDir, 'sha256', 'f'.repeat(64))));
    const logs = t.daemon.jsonLogs().map((l) => String(l.msg));
    assert.ok(
      logs.some((m) => m.includes('partial download')),
      logs.join('\n'),
    );
    assert.ok(logs.some((m) => m.includes('index row had no file')));
    assert.ok(logs.some((m) => m.includes('had no index row')));
  });
});

describe('REQUIRE_CHECKSUM=true', () => {
  const t = s3Bed('require', { REQUIRE_CHECKSUM: 'true' });

  it('fails an image without an expected digest, saying how to give one', async () => {
    await t.s3.put('plain.qcow2', smallQcow2());
    const done = await provision(t.daemon, {
      image_url: `s3://${BUCKET}/plain.qcow2`,
      volume_name: 'vm-plain',
    });
    assert.equal(done.status, 'failed');
    assert.equal(done.error_code, 'checksum_unavailable');
    assert.match(done.error, /sha256:<hex>.*plain\.qcow2\.sha256.*REQUIRE_CHECKSUM/);
    assert.equal(t.s3.downloadsOf('plain.qcow2').length, 0);
  });

  it('accepts it with a checksum in the request', async () => {
    const done = await provision(t.daemon, {
      image_url: `s3://${BUCKET}/plain.qcow2`,
      volume_name: 'vm-plain',
      checksum: `sha256:${sha256File(smallQcow2())}`,
    });
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.checksum_verified, true);
  });
});

describe('memory while downloading a 2 GiB object', () => {
  const t = s3Bed('rss');

  it('keeps the daemon RSS flat', async () => {
    const big = join(t.work.dir, 'big.raw');
    writeFileSync(big, '');
    truncateSync(big, 2 * GIB);
    t.s3.seed('big.raw', big);
    const rss = () =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${t.daemon.pid}/status`, 'utf8'))![1]) * 1024;
    const before = rss();
    const submitted = await t.daemon.request('POST', '/api/v1/cache/prefetch', {
      image_url: `s3://${BUCKET}/big.raw`,
    });
    let peak = before;
    const final = await waitFor(
      'the 2 GiB prefetch',
      async () => {
        peak = Math.max(peak, rss());
        const { body } = await t.daemon.status(submitted.body.job_id);
        return ['completed', 'failed'].includes(body.status) ? body : undefined;
      },
      240_000,
      100,
    );
    assert.equal(final.status, 'completed', final.error);
    const mib = (n: number) => Math.round(n / 2 ** 20);
    console.log(`RSS while downloading 2 GiB: before ${mib(before)} MiB, peak ${mib(peak)} MiB`);
    assert.ok(peak - before < 64 * 2 ** 20, `RSS grew by ${mib(peak - before)} MiB`);
  });
});
