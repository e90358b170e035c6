import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { HEAP_SNAPSHOT_OPTION, liveHeapBytes } from '../harness/heap';
import { ImageServer } from '../harness/image-server';
import { checkInvariants, freshJobCompletes, report } from '../harness/invariants';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';

const JOBS = 500;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

describe('fault: load — 500 jobs submitted at once while clients poll', () => {
  const work = makeWorkdir('load');
  const www = join(work.dir, 'www');
  let server: ImageServer;
  let daemon: Daemon;
  const rss = () =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.pid}/status`, 'utf8'))![1]) * 1024;

  before(async () => {
    mkdirSync(www);
    execFileSync('qemu-img', ['create', '-f', 'qcow2', join(www, 'tiny.qcow2'), '4M'], { stdio: 'ignore' });
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x61 0 1M', join(www, 'tiny.qcow2')], {
      stdio: 'ignore',
    });
    server = await new ImageServer(www).start();
    daemon = await new Daemon({
      dir: work.dir,
      env: { MAX_CONCURRENT_JOBS: '2', LOG_LEVEL: 'info', NODE_OPTIONS: HEAP_SNAPSHOT_OPTION },
    }).start();
    // Warm up with a batch of the same kind and size, so that what is built once (compiled code,
    // object shapes, caches, and the ~450 keep-alive connections this burst opens, which the
    // daemon holds until they idle out) is in the baseline and the measurement sees what stays
    // per job.
    await Promise.all(
      Array.from({ length: JOBS }, (_, i) =>
        daemon.provision({
          image_url: `${server.url}/tiny.qcow2`,
          volume_name: `vm-warm-up-${i}`,
          volume_size_gb: 1,
          image_type: 'qcow2',
        }),
      ),
    );
    await allJobsFinal();
  });

  /** One watcher for a whole batch (not one poller per job: 500 would make 5000 reads a second). */
  async function allJobsFinal(): Promise<void> {
    await waitFor(
      'every job to leave pending and running',
      async () => {
        const open = await Promise.all(
          ['pending', 'running'].map((s) => daemon.request('GET', `/api/v1/jobs?status=${s}&limit=1`)),
        );
        return open.every((r) => r.status === 200 && r.body.total === 0) || undefined;
      },
      600_000,
      500,
    );
  }

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  it('runs them all, never more than MAX_CONCURRENT_JOBS at once, with no 5xx and fast status reads', async () => {
    const heapBefore = await liveHeapBytes(daemon, work.dir);
    const rssBefore = rss();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rss())), 250);
    const statuses: number[] = [];
    const latencies: number[] = [];
    let polling = true;
    const ids: string[] = [];
    // 50 status reads per second from other clients, for the whole run.
    const poller = (async () => {
      while (polling) {
        const started = Date.now();
        const batch = await Promise.all(
          Array.from({ length: 5 }, async () => {
            const id = ids[Math.floor(Math.random() * ids.length)];
            const t0 = performance.now();
            const response = await daemon.request(
              'GET',
              id ? `/api/v1/status/${id}` : '/api/v1/jobs?limit=1',
            );
            latencies.push(performance.now() - t0);
            return response.status;
          }),
        );
        statuses.push(...batch);
        await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - started))));
      }
    })();
    const submitted = await Promise.all(
      Array.from({ length: JOBS }, (_, i) =>
        daemon.provision({
          image_url: `${server.url}/tiny.qcow2`,
          volume_name: `vm-load-${i}`,
          volume_size_gb: 1,
          image_type: 'qcow2',
        }),
      ),
    );
    statuses.push(...submitted.map((r) => r.status));
    ids.push(...submitted.map((r) => r.body.job_id));
    assert.ok(
      submitted.every((r) => r.status === 202),
      JSON.stringify(submitted.find((r) => r.status !== 202)?.body),
    );

    await allJobsFinal();
    const finals: any[] = [];
    for (const id of ids) finals.push((await daemon.status(id)).body);
    polling = false;
    await poller;
    assert.ok(
      finals.every((f) => f.status === 'completed'),
      JSON.stringify(finals.find((f) => f.status !== 'completed')),
    );
    assert.deepEqual(
      statuses.filter((s) => s >= 500),
      [],
      'a request got a 5xx',
    );

    let peak = 0;
    for (const f of finals) {
      const running = finals.filter(
        (o) => o.started_at <= f.started_at && o.finished_at > f.started_at,
      ).length;
      peak = Math.max(peak, running);
    }
    assert.ok(peak <= 2, `${peak} jobs ran at once`);
    const rssAfter = rss();
    clearInterval(sampler);
    const heapAfter = await liveHeapBytes(daemon, work.dir);
    const invariants = await checkInvariants(daemon, { dir: work.dir });
    await freshJobCompletes(daemon, `${server.url}/tiny.qcow2`, 'vm-after-load');
    const mib = (n: number) => Math.round(n / 2 ** 20);
    // The bound: what survives a full garbage collection (live heap, compiled code aside) may grow
    // by 1 MiB at most over the 500 jobs (about 2 KiB kept per job would trip it): the job history
    // lives in SQLite, not in memory. RSS is reported, not bounded: it also holds garbage V8 has not
    // collected yet, whose amount depends on GC timing and machine load (peaks of +54 to +166 MiB
    // were seen; +338 MiB before log lines were written synchronously).
    assert.ok(
      heapAfter - heapBefore < 2 ** 20,
      `live heap grew by ${((heapAfter - heapBefore) / 2 ** 20).toFixed(2)} MiB over ${JOBS} jobs`,
    );
    report('load', {
      submitted: JOBS,
      peak_concurrency: peak,
      status_reads: latencies.length,
      status_p50_ms: Math.round(percentile(latencies, 50)),
      status_p99_ms: Math.round(percentile(latencies, 99)),
      rss_before_mib: mib(rssBefore),
      rss_after_mib: mib(rssAfter),
      rss_peak_mib: mib(rssPeak),
      live_heap_before_mib: +(heapBefore / 2 ** 20).toFixed(1),
      live_heap_after_mib: +(heapAfter / 2 ** 20).toFixed(1),
      ...invariants,
    });
  });

  it('answers one of two simultaneous requests for the same volume with 409', async () => {
    const [a, b] = await Promise.all(
      [1, 2].map(() =>
        daemon.provision({
          image_url: `${server.url}/tiny.qcow2`,
          volume_name: 'vm-race',
          volume_size_gb: 1,
          image_type: 'qcow2',
        }),
      ),
    );
    assert.deepEqual([a.status, b.status].sort(), [202, 409]);
    const winner = a.status === 202 ? a : b;
    assert.equal((await daemon.waitFinal(winner.body.job_id)).status, 'completed');
  });

  it('makes one job of the same Idempotency-Key sent twice at once', async () => {
    const body = {
      image_url: `${server.url}/tiny.qcow2`,
      volume_name: 'vm-idem-race',
      volume_size_gb: 1,
      image_type: 'qcow2',
    };
    const [a, b] = await Promise.all(
      [1, 2].map(() => daemon.provision(body, { 'idempotency-key': 'race-key' })),
    );
    assert.deepEqual([a.status, b.status].sort(), [200, 202]);
    assert.equal(a.body.job_id, b.body.job_id);
    const { body: list } = await daemon.request('GET', '/api/v1/jobs?volume=vm-idem-race');
    assert.equal(list.total, 1);
  });
});
