/**
 * P10 (issue #18): is the daemon's event loop free while two cold jobs stream at full speed?
 *
 * In-daemon figure: prom-client's default metrics (the daemon exports them, metrics.module.ts)
 * include nodejs_eventloop_lag_{p50,p99,max}_seconds from perf_hooks.monitorEventLoopDelay, and
 * each scrape of /metrics resets that histogram. So one scrape right before the jobs start and one
 * right after both ended give the delay over exactly that window. The histogram records the time
 * between two firings of a 10 ms timer (prom-client's eventLoopMonitoringPrecision), so an idle
 * loop reads ~10.2 ms: the delay is that minus the 10 ms interval, and that is what the row reports.
 * Client figure: the status endpoint's latency meanwhile, with one client polling every 50 ms (as
 * `lvp` does) and, in the other variant, under autocannon load (10 connections). The client runs in
 * a process of its own (status-client.ts): this one serves S3 and relays it at full speed.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { rm } from 'node:fs/promises';
import type { Daemon } from '../test/harness/daemon';
import { readSse } from '../test/harness/sse';
import { median, round } from './stats';
import type { StatusLatency } from './status-client';

/** prom-client's eventLoopMonitoringPrecision (its default; metrics.module.ts keeps it): ms between samples. */
const LOOP_SAMPLE_MS = 10;

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
  status: StatusLatency;
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
  const client = statusClient(`${daemon.url}/api/v1/status/${jobId}`, 'poll');
  await sleep(seconds * 1000);
  const status = await client.stop();
  return { loop: loopDelay(await scrape(daemon)), status, seconds, jobId };
}

/** The loop's delay over the window (ms): the gauges less the sampling interval. */
function loopDelay(metrics: string): Run['loop'] {
  const delay = (name: string) => Math.max(0, gauge(metrics, name) - LOOP_SAMPLE_MS);
  return {
    p50: delay('nodejs_eventloop_lag_p50_seconds'),
    p99: delay('nodejs_eventloop_lag_p99_seconds'),
    max: delay('nodejs_eventloop_lag_max_seconds'),
  };
}

const gauge = (text: string, name: string): number => {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`P10: /metrics has no ${name}`);
  return Number(match[1]) * 1000;
};

async function scrape(daemon: Daemon): Promise<string> {
  const response = await fetch(`${daemon.url}/metrics`);
  if (response.status !== 200) throw new Error(`P10: /metrics answered ${response.status}`);
  return response.text();
}

/** The status client (status-client.ts) in a process of its own, timing answers until `stop`. */
function statusClient(url: string, mode: 'poll' | 'load'): { stop: () => Promise<StatusLatency> } {
  const child = fork(join(__dirname, 'status-client.js'), [url, mode], { stdio: 'inherit' });
  const answer = new Promise<StatusLatency>((resolve, reject) => {
    child.once('message', (m: { latency?: StatusLatency; error?: string }) =>
      m.latency ? resolve(m.latency) : reject(new Error(m.error)),
    );
    child.once('exit', (code) => reject(new Error(`P10: the status client exited (${code})`)));
  });
  answer.catch(() => undefined);
  return {
    stop: () => {
      child.send('stop');
      return answer;
    },
  };
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
  const status = statusClient(`${daemon.url}/api/v1/status/${ids[0]}`, client);
  const streams = await followed;
  const seconds = (performance.now() - started) / 1000;
  const metrics = await scrape(daemon); // the window ends here
  const statusResult = await status.stop();
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
    loop: loopDelay(metrics),
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
        'event loop: the daemon’s own nodejs_eventloop_lag_*_seconds less their 10 ms sampling interval (monitorEventLoopDelay, reset by the scrape before the jobs, read by the scrape after); status: client-side latency, from a client process of its own',
      value_is: 'max of event-loop p99 (one polling client) and status p99 (polling and under load)',
    },
  };
}
