import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { STAGES } from '../../src/jobs/pipeline/stages';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { repoRoot } from '../harness/repo';
import { S3Server } from '../harness/s3-server';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { smallQcow2, uniqueQcow2 } from '../fixtures/images';

const PREFIX = 'libvirt_volume_provisioner_';
const MIB = 1024 ** 2;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format → samples (enough of the format for what prom-client writes). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value;
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** A scrape of /metrics, read as `value(name, labels)`: the sum of the matching series, or undefined. */
class Scrape {
  readonly samples: Sample[];
  constructor(readonly text: string) {
    this.samples = parseMetrics(text);
  }

  matching(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter(
      (s) => s.name === PREFIX + name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
  }

  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const found = this.matching(name, labels);
    return found.length === 0 ? undefined : found.reduce((sum, s) => sum + s.value, 0);
  }
}

async function scrape(daemon: Daemon): Promise<Scrape> {
  const response = await fetch(`${daemon.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(String(response.headers.get('content-type')), /^text\/plain/);
  return new Scrape(await response.text());
}

function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { input, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** Counters of one scrape minus another's, for the series named. */
function moved(after: Scrape, before: Scrape, name: string, labels: Record<string, string> = {}): number {
  return (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0);
}

describe('metrics after a completed, a failed and a cancelled job', () => {
  const work = makeWorkdir('observability');
  const www = join(work.dir, 'www');
  let server: ImageServer;
  let daemon: Daemon;
  let smallBytes: number;
  let slowBytes: number;
  let baseline: Scrape;
  const ids: Record<'completed' | 'failed' | 'cancelled', string> = {
    completed: '',
    failed: '',
    cancelled: '',
  };

  before(async () => {
    mkdirSync(www);
    copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
    // 16 MiB of data no other test shares: a download the test can watch and cancel.
    copyFileSync(uniqueQcow2(work.dir, 'slow', 16), join(www, 'slow.qcow2'));
    smallBytes = statSync(join(www, 'small.qcow2')).size;
    slowBytes = statSync(join(www, 'slow.qcow2')).size;
    server = await new ImageServer(www).start();
    // One job at a time, so a second job waits in the queue.
    daemon = await new Daemon({ dir: work.dir, env: { MAX_CONCURRENT_JOBS: '1' } }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  it('starts with every job series at zero and idle gauges, the first request being the scrape', async () => {
    baseline = await scrape(daemon);
    for (const status of ['started', 'completed', 'failed', 'cancelled']) {
      assert.equal(baseline.value('jobs_total', { status }), 0, status);
    }
    assert.equal(baseline.value('active_jobs'), 0);
    assert.equal(baseline.value('running_jobs'), 0);
    assert.equal(baseline.value('queued_jobs'), 0);
    assert.equal(baseline.value('bytes_written_total'), 0);
    assert.equal(baseline.value('cache_entries'), 0);
    // Node's default process metrics come along.
    assert.ok(baseline.samples.some((s) => s.name === 'process_cpu_seconds_total'));
    assert.ok(baseline.samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds'));
  });

  it('counts a completed job: started, completed, its stages, the bytes downloaded and written', async () => {
    // Half a second of download, so the image is written while it downloads (at full speed a local
    // 8 MB download can be in the cache before the job opens it, and is then converted).
    server.bytesPerSecond = 16 * MIB;
    const submitted = await daemon.provision({
      image_url: `${server.url}/small.qcow2`,
      volume_name: 'vm-done',
      volume_size_gb: 1,
      image_type: 'qcow2',
      correlation_id: 'obs-completed',
    });
    assert.equal(submitted.status, 202);
    ids.completed = submitted.body.job_id;
    const final = await daemon.waitFinal(ids.completed);
    server.bytesPerSecond = 0;
    assert.equal(final.status, 'completed', final.error);

    const now = await scrape(daemon);
    assert.equal(moved(now, baseline, 'jobs_total', { status: 'started' }), 1);
    assert.equal(moved(now, baseline, 'jobs_total', { status: 'completed' }), 1);
    assert.equal(moved(now, baseline, 'jobs_total', { status: 'failed' }), 0);
    assert.equal(moved(now, baseline, 'job_duration_seconds_count', { status: 'completed' }), 1);
    // A cold qcow2 is written while it downloads (STREAM_CONVERT=auto, the default): every stage
    // of that path once, none of download-then-convert's (inspecting, creating_volume, converting:
    // the streaming stage does their work), and no cloning (ext4: no golden base).
    const streamingPath = ['resolve', 'checking_cache', 'downloading', 'streaming', 'finalizing'];
    for (const stage of STAGES) {
      const expected = streamingPath.includes(stage) ? 1 : 0;
      assert.equal(moved(now, baseline, 'stage_duration_seconds_count', { stage }), expected, stage);
    }
    assert.equal(moved(now, baseline, 'bytes_downloaded_total'), smallBytes);
    // The image's virtual size (64 MiB) went into the volume.
    assert.equal(moved(now, baseline, 'bytes_written_total'), 64 * MIB);
    assert.equal(moved(now, baseline, 'cache_misses_total'), 1);
    assert.equal(moved(now, baseline, 'cache_hits_total'), 0);
    assert.equal(now.value('cache_entries'), 1);
    assert.equal(now.value('cache_bytes'), smallBytes);
    assert.equal(now.value('active_jobs'), 0);
  });

  it('shows one running and one queued job in the gauges while they are so', async () => {
    server.bytesPerSecond = 1 * MIB;
    const running = await daemon.provision({
      image_url: `${server.url}/slow.qcow2`,
      volume_name: 'vm-cancelled',
      volume_size_gb: 1,
      image_type: 'qcow2',
      correlation_id: 'obs-cancelled',
    });
    assert.equal(running.status, 202);
    ids.cancelled = running.body.job_id;
    // Cold: written while it downloads, so the download goes on in stage `streaming`.
    await waitFor('the slow job to be streaming', async () => {
      const { body } = await daemon.status(ids.cancelled);
      return body.progress.stage === 'streaming' && body.progress.bytes_processed > 0;
    });
    // The same image as the completed job, declared raw: a cache hit, then refused at inspection.
    const queued = await daemon.provision({
      image_url: `${server.url}/small.qcow2`,
      volume_name: 'vm-failed',
      volume_size_gb: 1,
      image_type: 'raw',
      correlation_id: 'obs-failed',
    });
    assert.equal(queued.status, 202);
    ids.failed = queued.body.job_id;
    assert.equal((await daemon.status(ids.failed)).body.status, 'pending');

    const now = await scrape(daemon);
    // active_jobs counts unfinished jobs, as the original's did: running plus queued.
    assert.equal(now.value('running_jobs'), 1);
    assert.equal(now.value('queued_jobs'), 1);
    assert.equal(now.value('active_jobs'), 2);
    assert.equal(moved(now, baseline, 'jobs_total', { status: 'started' }), 3);
  });

  it('counts the cancelled and the failed job exactly, and the gauges fall back to zero', async () => {
    const cancelled = await daemon.request('DELETE', `/api/v1/cancel/${ids.cancelled}`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.status, 'cancelled');
    server.bytesPerSecond = 0;
    const failed = await daemon.waitFinal(ids.failed);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.cache_hit, true);
    assert.match(failed.error, /image_type raw/);

    const now = await scrape(daemon);
    assert.deepEqual(
      Object.fromEntries(
        ['started', 'completed', 'failed', 'cancelled'].map((status) => [
          status,
          moved(now, baseline, 'jobs_total', { status }),
        ]),
      ),
      { started: 3, completed: 1, failed: 1, cancelled: 1 },
    );
    for (const status of ['completed', 'failed', 'cancelled']) {
      assert.equal(moved(now, baseline, 'job_duration_seconds_count', { status }), 1, status);
    }
    // Stages that finished: the five of the completed job (it streamed); resolve and checking_cache
    // of the other two, and downloading of the cancelled one, which went on into streaming and was
    // cancelled there (the failed one, a cache hit, failed in inspecting).
    const stages = Object.fromEntries(
      STAGES.map((stage) => [stage, moved(now, baseline, 'stage_duration_seconds_count', { stage })]),
    );
    assert.deepEqual(stages, {
      resolve: 3,
      checking_cache: 3,
      downloading: 2,
      streaming: 1,
      inspecting: 0,
      creating_volume: 0,
      cloning: 0,
      converting: 0,
      finalizing: 1,
    });
    assert.equal(now.value('active_jobs'), 0);
    assert.equal(now.value('running_jobs'), 0);
    assert.equal(now.value('queued_jobs'), 0);
    assert.equal(moved(now, baseline, 'cache_hits_total'), 1);
    assert.equal(moved(now, baseline, 'cache_misses_total'), 2);
    assert.equal(moved(now, baseline, 'cache_evictions_total'), 0);
    assert.equal(now.value('cache_entries'), 1, 'the cancelled download must not enter the cache');
    assert.equal(now.value('cache_bytes'), smallBytes);
    // The completed job wrote its image's virtual size (64 MiB). The cancelled one, streaming, adds
    // what qemu-img's progress said when it was stopped: that counts requests as they are issued
    // (8 of 2 MiB), so for this image of 16 MiB of data it may be its whole 32 MiB virtual size.
    const written = moved(now, baseline, 'bytes_written_total');
    assert.ok(written >= 64 * MIB && written <= 96 * MIB, `bytes_written_total moved by ${written}`);
    // The cancelled download got part of its image: more than nothing, less than all.
    const partial = moved(now, baseline, 'bytes_downloaded_total') - smallBytes;
    assert.ok(
      partial > 0 && partial < slowBytes,
      `cancelled download counted ${partial} of ${slowBytes} bytes`,
    );
  });

  it('labels requests by endpoint (route template), never by raw URL, and no health endpoint was called', async () => {
    const now = await scrape(daemon);
    assert.equal(
      now.value('requests_total', { method: 'POST', endpoint: '/api/v1/provision', status: '202' }),
      3,
    );
    assert.equal(
      now.value('requests_total', { method: 'DELETE', endpoint: '/api/v1/cancel/:job_id', status: '200' }),
      1,
    );
    assert.ok(
      now.value('requests_total', { method: 'GET', endpoint: '/api/v1/status/:job_id', status: '200' })! > 0,
    );
    assert.ok(
      now.value('requests_duration_seconds_count', { method: 'GET', endpoint: '/api/v1/status/:job_id' })! >
        0,
    );
    const routes = new Set(now.matching('requests_total').map((s) => s.labels.endpoint));
    assert.ok(![...routes].some((route) => UUID.test(route)), [...routes].join(', '));
    for (const probe of ['/health', '/healthz', '/livez', '/readyz']) {
      assert.equal(now.value('requests_total', { endpoint: probe }), undefined, `${probe} was called`);
    }
    await fetch(`${daemon.url}/no/such/${ids.completed}`);
    const later = await scrape(daemon);
    assert.equal(moved(later, now, 'requests_total', { endpoint: 'unmatched', status: '404' }), 1);
  });

  it('passes promtool check metrics', async () => {
    const { text } = await scrape(daemon);
    const { status, output } = promtool(['check', 'metrics'], text);
    assert.equal(status, 0, output);
  });

  it('ships alert rules that promtool check rules accepts', () => {
    const { status, output } = promtool([
      'check',
      'rules',
      join(repoRoot(), 'config', 'prometheus-rules.yml'),
    ]);
    assert.equal(status, 0, output);
    assert.match(output, /SUCCESS: \d+ rules found/);
  });
});

const isRoot = process.getuid?.() === 0;

describe('readiness and liveness', { skip: isRoot ? false : 'needs root to mount a filesystem' }, () => {
  const work = makeWorkdir('readiness');
  const www = join(work.dir, 'www');
  const cacheDir = join(work.dir, 'var/cache');
  const secret = 'obs-secret-b7c1d0e4';
  let mounted = false;
  let s3: S3Server;
  let server: ImageServer;
  let daemon: Daemon;

  const mount = (...args: string[]) => execFileSync('mount', args, { stdio: 'pipe' });

  before(async () => {
    mkdirSync(www);
    mkdirSync(join(work.dir, 's3'));
    for (const name of ['a', 'b']) copyFileSync(uniqueQcow2(work.dir, name, 8), join(www, `${name}.qcow2`));
    // The cache on its own filesystem, so it can really be made read-only: root ignores
    // permission bits (chmod 0555 would stop nothing), but not a read-only mount.
    mkdirSync(cacheDir, { recursive: true });
    mount('-t', 'tmpfs', '-o', 'size=4g,mode=0700', 'lvp-obs-cache', cacheDir);
    mounted = true;
    s3 = await new S3Server(join(work.dir, 's3')).start();
    server = await new ImageServer(www).start();
    daemon = await new Daemon({
      dir: work.dir,
      env: {
        ...s3.daemonEnv(),
        MINIO_SECRET_KEY: secret,
        READY_S3_CHECK_SECONDS: '1',
        MAX_CONCURRENT_JOBS: '2',
      },
    }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    await s3?.stop();
    if (mounted) {
      try {
        mount('-o', 'remount,rw', cacheDir);
      } catch {
        // already writable
      }
      execFileSync('umount', [cacheDir]);
    }
    work.cleanup();
  });

  async function readyz() {
    return daemon.request('GET', '/readyz');
  }

  async function livezMs(): Promise<number> {
    const started = performance.now();
    const response = await fetch(`${daemon.url}/livez`);
    await response.text();
    assert.equal(response.status, 200);
    return performance.now() - started;
  }

  it('is ready when the database, cache, volume directory, qemu-img and S3 are', async () => {
    const { status, body } = await waitFor('/readyz to say ready', async () => {
      const answer = await readyz();
      return answer.status === 200 ? answer : undefined;
    });
    assert.equal(status, 200);
    assert.equal(body.status, 'ok');
    assert.deepEqual(Object.keys(body.details).sort(), [
      'cache_dir',
      'database',
      'qemu_img',
      's3',
      'volume_dir',
    ]);
    for (const detail of Object.values<{ status: string }>(body.details)) assert.equal(detail.status, 'up');
    assert.ok(body.details.cache_dir.free_bytes > 1024 ** 3);
    assert.match(body.details.qemu_img.version, /^qemu-img version /);
    assert.equal(body.details.s3.endpoint, `http://${s3.endpoint}/`);
  });

  it('keeps the original /health fields and answers liveness in terminus shape', async () => {
    const health = await daemon.request('GET', '/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'healthy');
    assert.equal(typeof health.body.uptime_seconds, 'number');
    assert.equal(health.body.active_jobs, 0);
    assert.equal(health.body.queued_jobs, 0);
    for (const path of ['/healthz', '/livez']) {
      const live = await daemon.request('GET', path);
      assert.equal(live.status, 200);
      assert.equal(live.body.status, 'ok');
      assert.equal(live.body.details.process.status, 'up');
    }
  });

  it('turns 503 naming cache_dir while the cache filesystem is read-only, and 200 once it is writable', async () => {
    mount('-o', 'remount,ro', cacheDir);
    try {
      const { status, body } = await readyz();
      assert.equal(status, 503);
      assert.equal(body.status, 'error');
      assert.deepEqual(Object.keys(body.error), ['cache_dir']);
      assert.equal(body.error.cache_dir.status, 'down');
      assert.match(body.error.cache_dir.message, /cannot write in .*cache\/tmp: EROFS/);
      assert.equal(body.info.database.status, 'up');
      assert.ok(await livezMs());
      const metrics = await scrape(daemon);
      assert.equal(metrics.value('ready'), 0);
      assert.equal(metrics.value('readiness_check_up', { check: 'cache_dir' }), 0);
      assert.equal(metrics.value('readiness_check_up', { check: 'database' }), 1);
    } finally {
      mount('-o', 'remount,rw', cacheDir);
    }
    const again = await readyz();
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal((await scrape(daemon)).value('ready'), 1);
  });

  it('turns 503 naming s3 when the S3 endpoint stops, and 200 when it is back on the same port', async () => {
    const port = s3.port;
    await s3.stop();
    const down = await waitFor('/readyz to notice S3 is gone', async () => {
      const answer = await readyz();
      return answer.status === 503 ? answer : undefined;
    });
    assert.deepEqual(Object.keys(down.body.error), ['s3']);
    assert.match(down.body.error.s3.message, /unreachable: .*ECONNREFUSED/);
    assert.equal((await daemon.request('GET', '/livez')).status, 200);

    await s3.start(port);
    const up = await waitFor('/readyz to see S3 again', async () => {
      const answer = await readyz();
      return answer.status === 200 ? answer : undefined;
    });
    assert.equal(up.body.details.s3.status, 'up');
    assert.ok(
      daemon.jsonLogs().some((l) => l.msg === 'S3 endpoint unreachable'),
      'the change to unreachable is logged',
    );
  });

  // How fast it answers is the bench's question (P4), not a test's: these machines are too noisy for a bound.
  it('answers /livez while two jobs run', async () => {
    server.bytesPerSecond = 2 * MIB;
    const jobs: string[] = [];
    try {
      for (const name of ['a', 'b']) {
        const { status, body } = await daemon.provision({
          image_url: `${server.url}/${name}.qcow2`,
          volume_name: `vm-live-${name}`,
          volume_size_gb: 1,
          image_type: 'qcow2',
          correlation_id: `obs-live-${name}`,
        });
        assert.equal(status, 202);
        jobs.push(body.job_id);
      }
      await waitFor('both jobs to be downloading', async () => {
        const states = await Promise.all(jobs.map((id) => daemon.status(id)));
        return states.every((s) => s.body.status === 'running' && s.body.progress.bytes_processed > 0);
      });
      for (let i = 0; i < 20; i++) {
        const response = await fetch(`${daemon.url}/livez`);
        assert.equal(response.status, 200);
        assert.equal(((await response.json()) as { status: string }).status, 'ok');
      }
      assert.equal((await scrape(daemon)).value('running_jobs'), 2, 'both jobs were running throughout');
    } finally {
      server.bytesPerSecond = 0;
      for (const id of jobs) await daemon.request('DELETE', `/api/v1/cancel/${id}`);
    }
  });

  it('logs each request line with its request id and never the S3 secret', () => {
    const lines = daemon.jsonLogs();
    const requests = lines.filter((l) => l.req !== undefined);
    assert.ok(requests.length > 0, 'no request lines');
    for (const line of requests) assert.ok(line.request_id, JSON.stringify(line));
    assert.ok(!daemon.logs.some((l) => l.includes(secret)), 'MINIO_SECRET_KEY appears in the log');
  });
});
