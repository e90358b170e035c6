import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Daemon } from '../test/harness/daemon';
import { readSse } from '../test/harness/sse';

export interface ProvisionResult {
  /** Wall clock from POST to the client learning the job completed. */
  seconds: number;
  job: Record<string, any>;
  /** SSE events received (0 when polling). */
  events: number;
}

/**
 * One provision through the daemon's API, as a client sees it: POST, then follow the job either
 * over Server-Sent Events (as `lvp` does) or by polling the status every 20 ms, until it ends.
 */
export async function provisionViaApi(
  daemon: Daemon,
  body: Record<string, unknown>,
  follow: 'sse' | 'poll',
): Promise<ProvisionResult> {
  const start = performance.now();
  const submitted = await daemon.provision(body);
  if (submitted.status !== 202) throw new Error(`provision refused: ${JSON.stringify(submitted.body)}`);
  const id = submitted.body.job_id as string;
  let job: Record<string, any>;
  let events = 0;
  if (follow === 'sse') {
    const { done } = readSse(`${daemon.url}/api/v1/jobs/${id}/events`);
    const seen = await done;
    events = seen.events.length;
    job = seen.events.at(-1)?.data;
  } else {
    for (;;) {
      job = (await daemon.status(id)).body;
      if (['completed', 'failed', 'cancelled'].includes(job.status)) break;
      await sleep(20);
    }
  }
  const seconds = (performance.now() - start) / 1000;
  if (job?.status !== 'completed') {
    throw new Error(`job ${id} did not complete: ${job?.status} ${job?.error_code} ${job?.error}`);
  }
  return { seconds, job, events };
}

/** Drops an image from the daemon's cache so the next provision downloads it again. */
export async function evict(daemon: Daemon, sha256: string): Promise<void> {
  const answer = await daemon.request('DELETE', `/api/v1/cache/${sha256}`);
  if (answer.status !== 200 && answer.status !== 204 && answer.status !== 404) {
    throw new Error(`cache delete refused: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
}

/**
 * Waits until the daemon lists `count` golden bases (a base is verified after the job that made
 * it: seconds to minutes); returns the seconds waited.
 */
export async function basesListed(daemon: Daemon, count: number, timeoutMs = 3_600_000): Promise<number> {
  const start = performance.now();
  for (;;) {
    const bases = (await daemon.request('GET', '/api/v1/cache')).body.bases as unknown[];
    if (bases.length >= count) return (performance.now() - start) / 1000;
    if (performance.now() - start > timeoutMs) {
      throw new Error(`expected ${count} golden bases, found ${JSON.stringify(bases)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
