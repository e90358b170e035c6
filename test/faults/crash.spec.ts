import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { checkInvariants, freshJobCompletes, report } from '../harness/invariants';
import { makeWorkdir } from '../harness/workdir';
import { slowQcow2, smallQcow2 } from '../fixtures/images';

/** Deterministic pseudo-random delays, so a failing iteration can be replayed. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

describe('fault: kill -9 of the daemon at random moments, 20 times', () => {
  const work = makeWorkdir('crash');
  const www = join(work.dir, 'www');
  let server: ImageServer;
  let daemon: Daemon;

  before(async () => {
    mkdirSync(www);
    copyFileSync(slowQcow2(), join(www, 'slow.qcow2'));
    for (let i = 0; i < 20; i++) copyFileSync(smallQcow2(), join(www, `img-${i}.qcow2`));
    copyFileSync(smallQcow2(), join(www, 'fresh.qcow2'));
    server = await new ImageServer(www).start();
    // Downloads take a while, so kills land while downloading, converting, or writing job state.
    server.bytesPerSecond = statSync(join(www, 'img-0.qcow2')).size;
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  it('leaves every job final, no orphan volume, no partial download, a sound cache, and a working daemon', async () => {
    const next = random(42);
    const stages: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      daemon = await new Daemon({ dir: work.dir, env: { MAX_CONCURRENT_JOBS: '2' } }).start();
      await checkInvariants(daemon, { dir: work.dir });
      const jobs = [
        (
          await daemon.provision({
            image_url: `${server.url}/img-${i}.qcow2`,
            volume_name: `vm-${i}`,
            volume_size_gb: 1,
            image_type: 'qcow2',
          })
        ).body.job_id,
        (
          await daemon.provision({
            image_url: `${server.url}/slow.qcow2`,
            volume_name: `vm-slow-${i}`,
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
    const invariants = await checkInvariants(daemon, { dir: work.dir });
    server.bytesPerSecond = 0;
    await freshJobCompletes(daemon, `${server.url}/fresh.qcow2`, 'vm-after-crashes');
    assert.ok(
      Object.keys(stages).some((k) => k.includes('downloading')),
      JSON.stringify(stages),
    );
    report('kill -9 x20', { iterations: 20, killed_at: stages, ...invariants, invariants: 'a b c d e hold' });
  });
});
