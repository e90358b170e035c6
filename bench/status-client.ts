/**
 * P10's status client, in a process of its own (stream-load.ts forks it): the bench's own process
 * serves S3 (s3rver) and relays it (the throttle proxy) at full speed while the jobs stream, so a
 * client timed there would count its own event loop's delays as the daemon's answer time.
 *
 * argv: <url> <poll|load>. `poll` fetches the URL every 50 ms (as `lvp` does); `load` runs
 * autocannon (10 connections). On the message 'stop' it sends back {p50, p99, count} (ms) and exits.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';

export interface StatusLatency {
  p50: number;
  p99: number;
  count: number;
}

export const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

/** Polls the URL every 50 ms until `done`, timing each answer. */
async function poll(url: string, done: Promise<unknown>): Promise<StatusLatency> {
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
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), count: latencies.length };
}

/** autocannon on the URL until `done`; its latency percentiles. */
function hammer(url: string, done: Promise<unknown>): Promise<StatusLatency> {
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

if (require.main === module) {
  const [url, mode] = process.argv.slice(2);
  const stopped = new Promise<void>((resolve) => process.once('message', () => resolve()));
  const measured = mode === 'load' ? hammer(url, stopped) : poll(url, stopped);
  measured.then(
    (latency) => process.send!({ latency }, () => process.exit(0)),
    (error: Error) => process.send!({ error: error.message }, () => process.exit(1)),
  );
}
