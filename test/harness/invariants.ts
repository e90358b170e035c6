import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Daemon } from './daemon';
import { waitFor } from './wait';

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
 * has a file whose sha256 matches; (f) every golden base belongs to a cached image. (e) — a fresh job
 * completes — is `freshJobCompletes`.
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
  const names = existsSync(volumesDir) ? readdirSync(volumesDir) : [];
  // The golden bases directory is no volume: (f) below accounts for each of its files.
  const volumes = names.filter((f) => f !== BASES_DIR).map((f) => f.replace(/\.raw$/, ''));
  const completed = new Set(jobs.filter((j) => j.status === 'completed').map((j) => j.volume_name));
  const running = new Set(jobs.filter((j) => j.status === 'running').map((j) => j.volume_name));
  for (const volume of volumes) {
    const known = completed.has(volume) || running.has(volume) || options.preexisting?.includes(volume);
    assert.ok(known, `(b) volume ${volume} belongs to no completed job`);
  }

  const tmp = join(options.dir, 'var/cache/tmp');
  const leftovers = existsSync(tmp) ? readdirSync(tmp) : [];
  if (!options.allowRunning) assert.deepEqual(leftovers, [], '(c) files left in the cache tmp area');

  // A golden base is verified after its job ended: its verification ends (kept or removed) first.
  const basesDir = join(volumesDir, BASES_DIR);
  if (!options.allowRunning && existsSync(basesDir)) {
    await waitFor(
      'the golden bases being verified to be kept or removed',
      () => !existsSync(basesDir) || !readdirSync(basesDir).some((f) => f.endsWith('.partial')),
      120_000,
    );
  }
  const { body: cache } = await daemon.request('GET', '/api/v1/cache');
  for (const entry of cache.entries) {
    const file = join(options.dir, 'var/cache/sha256', entry.sha256);
    assert.ok(existsSync(file), `(d) cache row ${entry.sha256} has no file`);
    const actual = execFileSync('sha256sum', [file]).toString().slice(0, 64);
    assert.equal(actual, entry.sha256, `(d) cache file ${entry.sha256} does not hash to its name`);
  }
  if (names.includes(BASES_DIR)) checkBases(join(volumesDir, BASES_DIR), cache, options.allowRunning);
  return { jobs: jobs.length, finals, volumes: volumes.length, cacheEntries: cache.entries.length };
}

/** VOLUME_DIR/.lvp-bases: made only when a golden base is made (never on a filesystem without reflinks). */
const BASES_DIR = '.lvp-bases';

/**
 * (f) every file in the bases directory is a complete base the daemon lists (its .raw and .json)
 * of an image it has cached; a half-made one (.partial) only while jobs may still run (checkInvariants
 * waits for the verifications that go on after jobs to end); the
 * directory exists only while it holds something.
 */
function checkBases(dir: string, cache: any, allowRunning?: boolean): void {
  const cached = new Set<string>(cache.entries.map((e: any) => e.sha256));
  const listed = new Set<string>(cache.bases.map((b: any) => `${b.sha256}-${b.virtual_size}`));
  const files = readdirSync(dir);
  if (!allowRunning) assert.ok(files.length > 0, '(f) an empty golden bases directory was left');
  for (const file of files) {
    const match = /^([0-9a-f]{64})-(\d+)\.(raw|json|partial)$/.exec(file);
    assert.ok(match, `(f) ${file} in the golden bases directory is no base`);
    if (match[3] === 'partial') {
      assert.ok(allowRunning, `(f) half-made golden base ${file} left behind`);
      continue;
    }
    assert.ok(listed.has(`${match[1]}-${match[2]}`), `(f) golden base file ${file} is not a listed base`);
    assert.ok(cached.has(match[1]), `(f) golden base ${file} belongs to no cached image`);
  }
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
