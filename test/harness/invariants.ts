import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Daemon } from './daemon';

export interface InvariantOptions {
  /** The daemon's working directory (var/ lives under it). */
  dir: string;
  /** Volumes that existed before the test and belong to nobody's job. */
  preexisting?: string[];
  /** Statuses a job may legitimately still have (e.g. while a long job runs). */
  allowRunning?: boolean;
}

export interface InvariantReport {
  jobs: number;
  finals: Record<string, number>;
  volumes: number;
  cacheEntries: number;
}

async function allJobs(daemon: Daemon): Promise<any[]> {
  const jobs: any[] = [];
  for (let offset = 0; ; offset += 500) {
    const { body } = await daemon.request('GET', `/api/v1/jobs?limit=500&offset=${offset}`);
    jobs.push(...body.jobs);
    if (body.jobs.length < 500) return jobs;
  }
}

/**
 * The fault suite's invariants, checked through the API and on disk:
 * (a) every job is final (or running, when allowed); (b) every volume on disk is accounted for by
 * a completed job or was there before; (c) the cache tmp area is empty; (d) every cache index row
 * has a file whose sha256 matches. (e) — a fresh job completes — is `freshJobCompletes`.
 */
export async function checkInvariants(daemon: Daemon, options: InvariantOptions): Promise<InvariantReport> {
  const jobs = await allJobs(daemon);
  const finals: Record<string, number> = {};
  for (const job of jobs) {
    finals[job.status] = (finals[job.status] ?? 0) + 1;
    const ok =
      ['completed', 'failed', 'cancelled'].includes(job.status) ||
      (options.allowRunning && job.status === 'running');
    assert.ok(ok, `(a) job ${job.job_id} is ${job.status}`);
    if (job.status === 'failed') assert.ok(job.error, `(a) failed job ${job.job_id} has no reason`);
  }

  const volumesDir = join(options.dir, 'var/volumes');
  const volumes = existsSync(volumesDir) ? readdirSync(volumesDir).map((f) => f.replace(/\.raw$/, '')) : [];
  const completed = new Set(jobs.filter((j) => j.status === 'completed').map((j) => j.volume_name));
  const running = new Set(jobs.filter((j) => j.status === 'running').map((j) => j.volume_name));
  for (const volume of volumes) {
    const known = completed.has(volume) || running.has(volume) || options.preexisting?.includes(volume);
    assert.ok(known, `(b) volume ${volume} belongs to no completed job`);
  }

  const tmp = join(options.dir, 'var/cache/tmp');
  const leftovers = existsSync(tmp) ? readdirSync(tmp) : [];
  if (!options.allowRunning) assert.deepEqual(leftovers, [], '(c) files left in the cache tmp area');

  const { body: cache } = await daemon.request('GET', '/api/v1/cache');
  for (const entry of cache.entries) {
    const file = join(options.dir, 'var/cache/sha256', entry.sha256);
    assert.ok(existsSync(file), `(d) cache row ${entry.sha256} has no file`);
    const actual = execFileSync('sha256sum', [file]).toString().slice(0, 64);
    assert.equal(actual, entry.sha256, `(d) cache file ${entry.sha256} does not hash to its name`);
  }
  return { jobs: jobs.length, finals, volumes: volumes.length, cacheEntries: cache.entries.length };
}

/** (e): the daemon accepts and completes a fresh job. */
export async function freshJobCompletes(daemon: Daemon, imageUrl: string, name: string): Promise<void> {
  const { status, body } = await daemon.provision({
    image_url: imageUrl,
    volume_name: name,
    volume_size_gb: 1,
    image_type: 'qcow2',
  });
  assert.equal(status, 202, `(e) ${JSON.stringify(body)}`);
  const final = await daemon.waitFinal(body.job_id, 120_000);
  assert.equal(final.status, 'completed', `(e) ${final.error}`);
}

/** One line per case for the suite's report, printed at the end of each spec. */
export function report(name: string, facts: Record<string, unknown>): void {
  console.log(`FAULT-REPORT ${JSON.stringify({ case: name, ...facts })}`);
}
