/**
 * A/B of cold provisions: the same image, cold, through the API of one daemon per (tree, mode),
 * interleaved round by round, from s3rver on loopback (no proxy). Per job: seconds from POST to
 * `completed` (SSE), the daemon's CPU seconds (/proc/PID/stat), its event-loop lag p99 and max
 * (its /metrics, scraped right before and after: prom-client resets the histogram), and for a
 * streamed job when its write started and ended and its download ended. It answers "did this change
 * make the cold path cheaper?" on a noisy machine: both sides run in the same minutes.
 *
 *   npm run build:all && node dist/bench/cold-ab.js
 *   AB_TREES=/work/main,/tmp/old   other checkouts, each built (their dist/ is what runs); default: this one
 *   AB_MODES=auto,off              STREAM_CONVERT of each daemon (default auto,off)
 *   AB_IMAGE=data|text             the 1 GiB-data qcow2, plain or compressed (default data)
 *   BENCH_ROUNDS=3, BENCH_DIR      as for npm run bench (images are shared with it)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Daemon as DaemonClass } from '../test/harness/daemon';
import { repoRoot } from '../test/harness/repo';
import { BUCKET, S3Server } from '../test/harness/s3-server';
import type { provisionViaApi as ProvisionViaApi, evict as Evict } from './api-client';
import { buildImage } from './images';

interface Tree {
  name: string;
  Daemon: typeof DaemonClass;
  provisionViaApi: typeof ProvisionViaApi;
  evict: typeof Evict;
}

const trees = (process.env.AB_TREES ?? repoRoot()).split(',').map((t) => resolve(t));
const modes = (process.env.AB_MODES ?? 'auto,off').split(',');
const imageKey = process.env.AB_IMAGE === 'text' ? 'text' : 'data';
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const benchDir = process.env.BENCH_DIR ?? '/var/tmp/lvp-bench';

/** The daemon's user+system CPU seconds so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Event-loop lag p99 and max in ms since the last scrape (the 10 ms sampling interval included). */
async function loopLag(daemon: DaemonClass): Promise<{ p99: number; max: number }> {
  const text = await (await fetch(`${daemon.url}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1]) * 1000;
  return { p99: gauge('nodejs_eventloop_lag_p99_seconds'), max: gauge('nodejs_eventloop_lag_max_seconds') };
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function loadTree(root: string): Promise<Tree> {
  const harness = (await import(join(root, 'dist/test/harness/daemon.js'))) as { Daemon: typeof DaemonClass };
  const api = (await import(join(root, 'dist/bench/api-client.js'))) as {
    provisionViaApi: typeof ProvisionViaApi;
    evict: typeof Evict;
  };
  const head = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  return { name: head, ...harness, ...api };
}

async function main(): Promise<void> {
  const image = await buildImage(join(benchDir, 'images'), {
    name: imageKey,
    virtualGiB: 2,
    dataGiB: 1,
    compressed: imageKey === 'text',
  });
  const digest = await sha256(image.path);
  const work = join(benchDir, `cold-ab-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const s3 = await new S3Server(join(work, 's3')).start();
  s3.seed(`${imageKey}.qcow2`, image.path);
  const daemons: { label: string; tree: Tree; daemon: DaemonClass; volumes: string }[] = [];
  try {
    for (const root of trees) {
      const tree = await loadTree(root);
      for (const mode of modes) {
        const label = `${mode}@${tree.name}`;
        const volumes = join(work, label, 'volumes');
        mkdirSync(volumes, { recursive: true });
        const env = {
          ...s3.daemonEnv(),
          STREAM_CONVERT: mode,
          VOLUME_BACKEND: 'file',
          VOLUME_DIR: volumes,
          LOG_LEVEL: 'info',
          RATE_LIMIT_PER_MINUTE: '100000000',
        };
        const daemon = await new tree.Daemon({ dir: join(work, label), env }).start();
        daemons.push({ label, tree, daemon, volumes });
      }
    }
    for (let round = 0; round < rounds; round++) {
      for (const { label, tree, daemon, volumes } of daemons) {
        await tree.evict(daemon, digest);
        execFileSync('sync');
        await loopLag(daemon);
        const cpuBefore = cpuSeconds(daemon.pid);
        const posted = Date.now();
        const { seconds, job } = await tree.provisionViaApi(
          daemon,
          {
            image_url: `s3://${BUCKET}/${imageKey}.qcow2`,
            checksum: `sha256:${digest}`,
            volume_name: `ab-${round}`,
            volume_size_gb: image.virtualBytes / 1024 ** 3,
            image_type: 'qcow2',
          },
          'sse',
        );
        const cpu = cpuSeconds(daemon.pid) - cpuBefore;
        const lag = await loopLag(daemon);
        const written = daemon
          .jsonLogs()
          .find(
            (l) => l.job_id === job.job_id && String(l.msg).startsWith('image written to the volume while'),
          );
        const at = (iso: unknown) => ((Date.parse(String(iso)) - posted) / 1000).toFixed(2);
        const streamed = written
          ? ` write ${at(written.convert_started_at)}-${at(written.convert_ended_at)} s, download ended ${at(written.download_ended_at)} s, reads that waited ${String(written.reads_that_waited)}`
          : '';
        console.log(
          `${label.padEnd(16)} round ${round}: ${seconds.toFixed(2)} s, daemon CPU ${cpu.toFixed(2)} s, ` +
            `loop p99 ${lag.p99.toFixed(0)} ms max ${lag.max.toFixed(0)} ms;${streamed}`,
        );
        rmSync(join(volumes, `ab-${round}.raw`), { force: true });
      }
    }
  } finally {
    for (const { daemon } of daemons) await daemon.stop();
    await s3.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
