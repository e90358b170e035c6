import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { checkInvariants, freshJobCompletes, report } from '../harness/invariants';
import { makeWorkdir } from '../harness/workdir';
import { waitFor } from '../harness/wait';
import { rawReference, sameBytes, slowQcow2, smallQcow2 } from '../fixtures/images';

const GIB = 1024 ** 3;

/** Deterministic pseudo-random delays, so a failing iteration can be replayed. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

/** Waits (bounded) until every job the daemon knows is final, and returns them. */
async function allFinal(daemon: Daemon, timeoutMs: number): Promise<any[]> {
  return waitFor(
    'every job to be final after the restart',
    async () => {
      const { body } = await daemon.request('GET', '/api/v1/jobs?limit=500');
      const open = body.jobs.filter((j: any) => !['completed', 'failed', 'cancelled'].includes(j.status));
      return open.length === 0 ? body.jobs : undefined;
    },
    timeoutMs,
    200,
  );
}

describe('fault: kill -9 of the daemon at random moments, 20 times', () => {
  const work = makeWorkdir('crash');
  const www = join(work.dir, 'www');
  const volumes = join(work.dir, 'var/volumes');
  const tmp = join(work.dir, 'var/cache/tmp');
  let server: ImageServer;
  let daemon: Daemon;
  let smallReference: string;
  let slowReference: string;

  before(async () => {
    mkdirSync(www);
    copyFileSync(slowQcow2(), join(www, 'slow.qcow2'));
    for (let i = 0; i < 20; i++) copyFileSync(smallQcow2(), join(www, `img-${i}.qcow2`));
    copyFileSync(smallQcow2(), join(www, 'fresh.qcow2'));
    server = await new ImageServer(www).start();
    // Downloads take a while, so kills land while downloading (and streaming), converting, or writing job state.
    server.bytesPerSecond = statSync(join(www, 'img-0.qcow2')).size;
    smallReference = rawReference(smallQcow2(), 'qcow2', work.dir);
    truncateSync(smallReference, GIB);
    slowReference = rawReference(slowQcow2(), 'qcow2', work.dir);
  });

  after(async () => {
    await daemon?.kill9();
    await server?.stop();
    work.cleanup();
  });

  it('resumes every interrupted job to a byte-exact volume; no orphan volume, no partial download, a sound cache, a working daemon', async () => {
    const next = random(42);
    const stages: Record<string, number> = {};
    const check = async () => {
      // The jobs the last kill interrupted go on (at most one interruption each, RESUME_MAX=3).
      for (const job of await allFinal(daemon, 180_000)) {
        assert.equal(job.status, 'completed', `${job.job_id} (${job.volume_name}): ${job.error}`);
      }
      // A completed slow job has the cache expand slow.qcow2 in the background (tmp/*.expanding, started
      // once the job let go of the image): not an orphan. Done when the cache lists the expanded copy.
      const volume = join(volumes, 'vm-slow.raw');
      if (existsSync(volume)) {
        await waitFor(
          'the cache to finish its expanded copy of slow.qcow2',
          async () => {
            const { body } = await daemon.request('GET', '/api/v1/cache');
            const expanded = body.entries.some((entry: any) => entry.expanded_bytes > 0);
            return (expanded && !readdirSync(tmp).some((name) => name.endsWith('.expanding'))) || undefined;
          },
          180_000,
          200,
        );
      }
      if (existsSync(volume)) assert.ok(sameBytes(volume, slowReference), 'vm-slow differs from its image');
      return checkInvariants(daemon, { dir: work.dir });
    };
    for (let i = 0; i < 20; i++) {
      daemon = await new Daemon({ dir: work.dir, env: { MAX_CONCURRENT_JOBS: '2' } }).start();
      await check();
      const jobs = [
        (
          await daemon.provision({
            image_url: `${server.url}/img-${i}.qcow2`,
            volume_name: `vm-${i}`,
            volume_size_gb: 1,
            image_type: 'qcow2',
          })
        ).body.job_id,
        // One volume for every slow job (reused, rewritten): 20 volumes of 1 GiB of data each would not fit /tmp.
        (
          await daemon.provision({
            image_url: `${server.url}/slow.qcow2`,
            volume_name: 'vm-slow',
            volume_size_gb: 2,
            image_type: 'qcow2',
          })
        ).body.job_id,
      ];
      await new Promise((r) => setTimeout(r, Math.round(next() * 2500)));
      for (const id of jobs) {
        const { body } = await daemon.status(id);
        const key = `${body.status}/${body.progress.stage}`;
        stages[key] = (stages[key] ?? 0) + 1;
      }
      await daemon.kill9();
    }
    daemon = await new Daemon({ dir: work.dir, env: { MAX_CONCURRENT_JOBS: '2' } }).start();
    const invariants = await check();
    const all = await allFinal(daemon, 1000);
    const resumed = all.filter((job) => job.resumed > 0);
    for (let i = 0; i < 20; i++) {
      assert.ok(sameBytes(join(volumes, `vm-${i}.raw`), smallReference), `vm-${i} differs from its image`);
    }
    assert.equal(invariants.finals.completed, 40, JSON.stringify(invariants.finals));
    server.bytesPerSecond = 0;
    await freshJobCompletes(daemon, `${server.url}/fresh.qcow2`, 'vm-after-crashes');
    // Kills landed mid-download: cold images are written while they download (STREAM_CONVERT=auto,
    // the default), so the download goes on in stage `streaming`.
    assert.ok(
      Object.keys(stages).some((k) => k.includes('downloading') || k.includes('streaming')),
      JSON.stringify(stages),
    );
    report('kill -9 x20', {
      iterations: 20,
      killed_at: stages,
      resumed_jobs: resumed.length,
      resumed_downloads: resumed.filter((job) => job.resumed_from_bytes > 0).length,
      ...invariants,
      invariants: 'a b c d e hold; every job completed byte-exact',
    });
  });
});
