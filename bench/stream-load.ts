/**
 * P10 (issue #18): is the daemon's event loop free while two cold jobs stream at full speed?
 *
 * In-daemon figure: prom-client's default metrics (the daemon exports them, metrics.module.ts)
 * include nodejs_eventloop_lag_{p50,p99,max}_seconds from perf_hooks.monitorEventLoopDelay
 * (10 ms resolution), and each scrape of /metrics resets that histogram. So one scrape right before
 * the jobs start and one right after both ended give the delay over exactly that window.
 * Client figure: the status endpoint's latency meanwhile, with one client polling every 50 ms (as
 * `lvp` does) and, in the other variant, under autocannon load (10 connections).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { rm } from 'node:fs/promises';
import autocannon from 'autocannon';
import type { Daemon } from '../test/harness/daemon';
import { readSse } from '../test/harness/sse';
import { median, round } from './stats';

export interface P10Input {
  daemon: Daemon;
  rounds: number;
  say: (text: string) => void;
  /** Evicts both images, so that both jobs download. */
  prepare: () => Promise<void>;
  /** The two provision requests of one run. */
  requests: (tag: string) => Record<string, unknown>[];
}

interface Run {
  /** Event-loop delay over the window (ms), from the daemon's /metrics. */
  loop: { p50: number; p99: number; max: number };
  /** Status answers meanwhile (ms). */
  status: { p50: number; p99: number; count: number };
  /** Seconds until both jobs completed. */
  seconds: number;
  /** A job of the run (its status is what the idle control polls). */
  jobId: string;
}

/**
 * The control: the same daemon with no job, for as long as a run with jobs took, one client polling
 * a finished job's status. What it shows is the delay the machine alone causes (other processes on
 * the 2 shared cores keep the daemon from being scheduled, which monitorEventLoopDelay counts too).
 */
async function idleRun(daemon: Daemon, jobId: string, seconds: number): Promise<Run> {
  await scrape(daemon);
  const latencies = await poller(`${daemon.url}/api/v1/status/${jobId}`, sleep(seconds * 1000));
  const metrics = await scrape(daemon);
  return {
    loop: {
      p50: gauge(metrics, 'nodejs_eventloop_lag_p50_seconds'),
      p99: gauge(metrics, 'nodejs_eventloop_lag_p99_seconds'),
      max: gauge(metrics, 'nodejs_eventloop_lag_max_seconds'),
    },
    status: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), count: latencies.length },
    seconds,
    jobId,
  };
}

const gauge = (text: string, name: string): number => {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`P10: /metrics has no ${name}`);
  return Number(match[1]) * 1000;
};

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

async function scrape(daemon: Daemon): Promise<string> {
  const response = await fetch(`${daemon.url}/metrics`);
  if (response.status !== 200) throw new Error(`P10: /metrics answered ${response.status}`);
  return response.text();
}

/** Polls the status every 50 ms until `done`, timing each answer. */
async function poller(url: string, done: Promise<unknown>): Promise<number[]> {
  let finished = false;
  void done.finally(() => (finished = true));
  const latencies: number[] = [];
  while (!finished) {
    const start = performance.now();
    const response = await fetch(url);
    await response.arrayBuffer();
    latencies.push(performance.now() - start);
    if (response.status !== 200) throw new Error(`P10: status answered ${response.status}`);
    await sleep(50);
  }
  return latencies;
}

/** autocannon on the status until `done`; its latency percentiles. */
function hammer(url: string, done: Promise<unknown>): Promise<{ p50: number; p99: number; count: number }> {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ url, connections: 10, duration: 3600 }, (error, result) => {
      if (error) return reject(error);
      if (result.errors + result.timeouts + result.non2xx > 0)
        return reject(new Error(`P10: errors under load ${JSON.stringify(result)}`));
      resolve({ p50: result.latency.p50, p99: result.latency.p99, count: result.requests.total });
    });
    void done.finally(() => instance.stop());
  });
}

async function oneRun(input: P10Input, tag: string, client: 'poll' | 'load'): Promise<Run> {
  const { daemon } = input;
  await input.prepare();
  await scrape(daemon); // resets the event-loop histogram: the window starts here
  const started = performance.now();
  const ids: string[] = [];
  for (const body of input.requests(tag)) {
    const answer = await daemon.provision(body);
    if (answer.status !== 202) throw new Error(`P10: provision refused ${JSON.stringify(answer.body)}`);
    ids.push(answer.body.job_id as string);
  }
  const followed = Promise.all(ids.map((id) => readSse(`${daemon.url}/api/v1/jobs/${id}/events`).done));
  const statusUrl = `${daemon.url}/api/v1/status/${ids[0]}`;
  const status =
    client === 'poll'
      ? poller(statusUrl, followed).then((l) => ({
          p50: percentile(l, 50),
          p99: percentile(l, 99),
          count: l.length,
        }))
      : hammer(statusUrl, followed);
  const streams = await followed;
  const seconds = (performance.now() - started) / 1000;
  const metrics = await scrape(daemon); // the window ends here
  const statusResult = await status;
  for (const [i, { events }] of streams.entries()) {
    const job = events.at(-1)?.data;
    if (job?.status !== 'completed') throw new Error(`P10: job ${ids[i]} ${job?.status}: ${job?.error}`);
    if (job.cache_hit) throw new Error(`P10: job ${ids[i]} was not cold`);
    const path = daemon
      .jsonLogs()
      .find((l) => l.job_id === ids[i] && String(l.msg).startsWith('write path:'));
    if (path?.write_path !== 'streaming') throw new Error(`P10: job ${ids[i]} did not stream`);
    await rm(job.volume_path as string, { force: true });
  }
  return {
    loop: {
      p50: gauge(metrics, 'nodejs_eventloop_lag_p50_seconds'),
      p99: gauge(metrics, 'nodejs_eventloop_lag_p99_seconds'),
      max: gauge(metrics, 'nodejs_eventloop_lag_max_seconds'),
    },
    status: statusResult,
    seconds,
    jobId: ids[0],
  };
}

export async function measureP10(input: P10Input) {
  const runs: Record<'poll' | 'load' | 'idle', Run[]> = { poll: [], load: [], idle: [] };
  for (let r = 0; r < input.rounds; r++) {
    const order = r % 2 === 0 ? (['poll', 'load'] as const) : (['load', 'poll'] as const);
    for (const client of order) {
      input.say(`P10 round ${r + 1}: two cold jobs streaming at full speed, status ${client}`);
      runs[client].push(await oneRun(input, `${client}-${r}`, client));
    }
    const last = runs.poll.at(-1)!;
    input.say(`P10 round ${r + 1}: control, no job, ${round(last.seconds, 0)} s`);
    runs.idle.push(await idleRun(input.daemon, last.jobId, last.seconds));
  }
  const med = (client: 'poll' | 'load' | 'idle', pick: (run: Run) => number) =>
    round(median(runs[client].map(pick)), 2);
  const loopP99 = { poll: med('poll', (x) => x.loop.p99), load: med('load', (x) => x.loop.p99) };
  const statusP99 = { poll: med('poll', (x) => x.status.p99), load: med('load', (x) => x.status.p99) };
  return {
    value: Math.max(loopP99.poll, statusP99.poll, statusP99.load),
    goal: '< 10 ms (event-loop delay p99 and status p99)',
    detail: {
      event_loop_p99_ms: loopP99,
      event_loop_max_ms: { poll: med('poll', (x) => x.loop.max), load: med('load', (x) => x.loop.max) },
      control_no_job: {
        event_loop_p99_ms: med('idle', (x) => x.loop.p99),
        event_loop_max_ms: med('idle', (x) => x.loop.max),
        status_p99_ms: med('idle', (x) => x.status.p99),
      },
      status_p99_ms: statusP99,
      status_p50_ms: { poll: med('poll', (x) => x.status.p50), load: med('load', (x) => x.status.p50) },
      seconds_both_jobs: { poll: med('poll', (x) => x.seconds), load: med('load', (x) => x.seconds) },
      runs,
      measured:
        'event loop: the daemon’s own nodejs_eventloop_lag_*_seconds (monitorEventLoopDelay, reset by the scrape before the jobs, read by the scrape after); status: client-side latency',
      value_is: 'max of event-loop p99 (one polling client) and status p99 (polling and under load)',
    },
  };
}
