import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { report } from '../harness/invariants';
import { s3Bed } from '../harness/s3-bed';
import { BUCKET } from '../harness/s3-server';
import { makeWorkdir } from '../harness/workdir';
import { rawReference, sameBytes, sha256File, smallQcow2, uniqueQcow2 } from '../fixtures/images';

/**
 * A source that goes silent (DOWNLOAD_STALL_SECONDS): each try is aborted after the limit and
 * retried with a Range resume; when the tries are used up the job fails naming the stall, and the
 * job slot goes to the next job at once instead of after JOB_TIMEOUT.
 */
const STALL_SECONDS = 1;
const ATTEMPTS = 3;
const BACKOFF_MS = 100;
const ENV = {
  DOWNLOAD_STALL_SECONDS: String(STALL_SECONDS),
  MINIO_RETRY_ATTEMPTS: String(ATTEMPTS),
  MINIO_RETRY_BACKOFF_MS: String(BACKOFF_MS),
  MAX_CONCURRENT_JOBS: '1',
};
/** Every try waits out the limit; between tries the backoff doubles (plus up to 20 % jitter). */
const STALL_BOUND_MS = ATTEMPTS * STALL_SECONDS * 1000 + 1.2 * BACKOFF_MS * (2 ** (ATTEMPTS - 1) - 1);
/** For the resolve/sidecar requests, the job bookkeeping and a loaded 2-core machine. */
const SLACK_MS = 5000;
const GIB = 1024 ** 3;

function secondsBetween(from: string, to: string): number {
  return (Date.parse(to) - Date.parse(from)) / 1000;
}

async function submit(daemon: Daemon, image_url: string, volume_name: string): Promise<string> {
  const submitted = await daemon.provision({
    image_url,
    volume_name,
    volume_size_gb: 1,
    image_type: 'qcow2',
  });
  assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
  return submitted.body.job_id as string;
}

/** The failed job took at least one limit per try (so it was the stall) and no more than the bound. */
function assertFailedByStall(final: any, pattern: RegExp): number {
  assert.equal(final.status, 'failed');
  assert.equal(final.error_code, 'source_failed');
  assert.match(final.error, pattern);
  assert.match(final.error, new RegExp(`gave up after ${ATTEMPTS} tries`));
  assert.doesNotMatch(final.error, /X-Amz-Signature/i, 'a signed URL leaked into the error');
  const seconds = secondsBetween(final.started_at, final.finished_at);
  assert.ok(seconds >= ATTEMPTS * STALL_SECONDS, `failed after ${seconds} s: before the tries could stall`);
  assert.ok(
    seconds * 1000 <= STALL_BOUND_MS + SLACK_MS,
    `failed after ${seconds} s; the bound is ${(STALL_BOUND_MS + SLACK_MS) / 1000} s`,
  );
  return seconds;
}

/** The queued job completes, and started as the stalled one ended (its slot was released). */
async function assertQueuedJobRan(daemon: Daemon, jobId: string, stalled: any): Promise<number> {
  const final = await daemon.waitFinal(jobId);
  assert.equal(final.status, 'completed', final.error);
  const wait = secondsBetween(stalled.finished_at, final.started_at);
  assert.ok(wait >= 0 && wait < 2, `the queued job started ${wait} s after the stalled one ended`);
  return wait;
}

function assertVolumeHolds(volume: string, image: string, dir: string) {
  assert.equal(statSync(volume).size, GIB);
  const reference = rawReference(image, 'qcow2', dir);
  truncateSync(reference, GIB);
  assert.ok(sameBytes(volume, reference), `${volume} differs from the image`);
}

/** The resumed GETs ask for the rest, from a byte > 0, guarded by the version's etag. */
function assertResumes(gets: { range?: string }[]) {
  assert.equal(gets[0].range, undefined);
  for (const get of gets.slice(1)) {
    const from = /^bytes=(\d+)-$/.exec(get.range ?? '');
    assert.ok(from && Number(from[1]) > 0, `a retry did not resume: range ${get.range}`);
  }
}

describe('a stalled HTTP source', () => {
  const work = makeWorkdir('stall-http');
  const www = join(work.dir, 'www');
  let server: ImageServer;
  let daemon: Daemon;

  before(async () => {
    mkdirSync(www);
    copyFileSync(smallQcow2(), join(www, 'next.qcow2'));
    server = await new ImageServer(www).start();
    daemon = await new Daemon({ dir: work.dir, env: ENV }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  it('fails a source that sends headers and a few bytes, then nothing, naming the stall; the queued job runs at once', async () => {
    copyFileSync(uniqueQcow2(work.dir, 'stuck', 8), join(www, 'stuck.qcow2'));
    server.stall('/stuck.qcow2', { afterBytes: 64 * 1024, times: Infinity });
    const stuck = await submit(daemon, `${server.url}/stuck.qcow2`, 'vm-stuck');
    const queued = await submit(daemon, `${server.url}/next.qcow2`, 'vm-next');
    assert.equal((await daemon.status(queued)).body.status, 'pending', 'MAX_CONCURRENT_JOBS=1: it must wait');

    const final = await daemon.waitFinal(stuck, 30_000);
    const seconds = assertFailedByStall(
      final,
      /no data from http:\/\/127\.0\.0\.1:\d+\/stuck\.qcow2 for 1 s \(DOWNLOAD_STALL_SECONDS\): the source stalled/,
    );
    const gets = server.getsOf('/stuck.qcow2');
    assert.equal(gets.length, ATTEMPTS);
    assertResumes(gets);
    assert.ok(
      gets.slice(1).every((g) => g.ifRange),
      'a resume must be guarded by If-Range',
    );
    // docs/operations.md: one warn line per stalled try, naming the stall and where it resumes.
    const retries = daemon
      .jsonLogs()
      .filter((l) => l.job_id === stuck && l.msg === 'download attempt failed; retrying');
    assert.equal(retries.length, ATTEMPTS - 1);
    for (const line of retries) {
      assert.equal(line.level, 40, 'pino level 40 = warn');
      assert.match(String(line.error), /^no data from http:.*\(DOWNLOAD_STALL_SECONDS\)/);
      assert.ok(Number(line.resume_at) > 0);
    }
    const wait = await assertQueuedJobRan(daemon, queued, final);
    // The failed download's partial file is gone (the queued job has finished with its own).
    assert.deepEqual(
      readdirSync(join(work.dir, 'var/cache/tmp')).filter((f) => f.endsWith('.part')),
      [],
    );
    report('stalled HTTP source', {
      failed_after_s: seconds,
      gets: gets.length,
      queued_started_after_s: wait,
    });
  });

  it('fails a source that accepts the connection but never sends its response headers', async () => {
    copyFileSync(uniqueQcow2(work.dir, 'mute', 2), join(www, 'mute.qcow2'));
    server.stall('/mute.qcow2', { times: Infinity });
    const final = await daemon.waitFinal(await submit(daemon, `${server.url}/mute.qcow2`, 'vm-mute'), 30_000);
    const seconds = assertFailedByStall(
      final,
      /no answer from http:\/\/127\.0\.0\.1:\d+\/mute\.qcow2 for 1 s \(DOWNLOAD_STALL_SECONDS\)/,
    );
    assert.equal(server.getsOf('/mute.qcow2').length, ATTEMPTS);
    report('HTTP source silent before headers', { failed_after_s: seconds });
  });

  it('resumes byte-exact with a Range request when the source stalls once and then recovers', async () => {
    const image = uniqueQcow2(work.dir, 'flaky', 8);
    copyFileSync(image, join(www, 'flaky.qcow2'));
    server.stall('/flaky.qcow2', { afterBytes: 3 * 1024 * 1024 + 5, times: 1 });
    const final = await daemon.waitFinal(
      await submit(daemon, `${server.url}/flaky.qcow2`, 'vm-flaky'),
      30_000,
    );
    assert.equal(final.status, 'completed', final.error);
    const gets = server.getsOf('/flaky.qcow2');
    assert.equal(gets.length, 2);
    assertResumes(gets);
    assert.equal(final.image_sha256, sha256File(image));
    assertVolumeHolds(join(work.dir, 'var/volumes/vm-flaky.raw'), image, work.dir);
  });
});

describe('a stalled S3 source (s3rver answering, then silent)', () => {
  const t = s3Bed('stall-s3', ENV);

  it('fails a GET that sends headers and a few bytes, then nothing, naming the object; the queued job runs at once', async () => {
    await t.s3.put('stuck.qcow2', uniqueQcow2(t.work.dir, 'stuck', 8));
    await t.s3.put('next.qcow2', smallQcow2());
    t.s3.stallNext('GET', 'stuck.qcow2', { afterBytes: 64 * 1024, times: Infinity });
    const stuck = await submit(t.daemon, `s3://${BUCKET}/stuck.qcow2`, 'vm-stuck');
    const queued = await submit(t.daemon, `s3://${BUCKET}/next.qcow2`, 'vm-next');

    const final = await t.daemon.waitFinal(stuck, 30_000);
    const seconds = assertFailedByStall(
      final,
      /no data from s3:\/\/images\/stuck\.qcow2 for 1 s \(DOWNLOAD_STALL_SECONDS\): the source stalled/,
    );
    const gets = t.s3.downloadsOf('stuck.qcow2');
    assert.equal(gets.length, ATTEMPTS);
    assertResumes(gets);
    assert.ok(
      gets.slice(1).every((g) => /^"[0-9a-f]+"$/.test(g.ifMatch ?? '')),
      'a resume must be guarded by the etag',
    );
    const wait = await assertQueuedJobRan(t.daemon, queued, final);
    report('stalled S3 source', { failed_after_s: seconds, gets: gets.length, queued_started_after_s: wait });
  });

  it('resumes byte-exact when the object stalls once and then recovers', async () => {
    const image = uniqueQcow2(t.work.dir, 'flaky', 8);
    await t.s3.put('flaky.qcow2', image);
    t.s3.stallNext('GET', 'flaky.qcow2', { afterBytes: 3 * 1024 * 1024 + 5, times: 1 });
    const final = await t.daemon.waitFinal(
      await submit(t.daemon, `s3://${BUCKET}/flaky.qcow2`, 'vm-flaky'),
      30_000,
    );
    assert.equal(final.status, 'completed', final.error);
    const gets = t.s3.downloadsOf('flaky.qcow2');
    assert.equal(gets.length, 2);
    assertResumes(gets);
    assert.equal(final.image_sha256, sha256File(image));
    assertVolumeHolds(join(t.volumes, 'vm-flaky.raw'), image, t.work.dir);
  });

  it('fails a job whose .sha256 sidecar stops after a few bytes, naming the request', async () => {
    const image = uniqueQcow2(t.work.dir, 'side', 2);
    await t.s3.put('side.qcow2', image);
    await t.s3.putText('side.qcow2.sha256', `${sha256File(image)}  side.qcow2\n`);
    t.s3.stallNext('GET', 'side.qcow2.sha256', { afterBytes: 10, times: 1 });
    const final = await t.daemon.waitFinal(
      await submit(t.daemon, `s3://${BUCKET}/side.qcow2`, 'vm-side'),
      30_000,
    );
    assert.equal(final.status, 'failed');
    assert.equal(final.error_code, 'source_failed');
    assert.match(
      final.error,
      /no data from the S3 endpoint 127\.0\.0\.1:\d+ \(GET \/images\/side\.qcow2\.sha256\) for 1 s \(DOWNLOAD_STALL_SECONDS\)/,
    );
  });

  it('fails a job whose object metadata request (HEAD) is never answered, naming the endpoint', async () => {
    await t.s3.put('mute.qcow2', uniqueQcow2(t.work.dir, 'mute', 2));
    t.s3.stallNext('HEAD', 'mute.qcow2', { times: 1 });
    const final = await t.daemon.waitFinal(
      await submit(t.daemon, `s3://${BUCKET}/mute.qcow2`, 'vm-mute'),
      30_000,
    );
    assert.equal(final.status, 'failed');
    assert.equal(final.error_code, 'source_failed');
    assert.match(
      final.error,
      /no answer from the S3 endpoint 127\.0\.0\.1:\d+ \(HEAD \/images\/mute\.qcow2\) for 1 s \(DOWNLOAD_STALL_SECONDS\)/,
    );
    const seconds = secondsBetween(final.started_at, final.finished_at);
    assert.ok(
      seconds >= STALL_SECONDS && seconds * 1000 <= STALL_SECONDS * 1000 + SLACK_MS,
      `took ${seconds} s`,
    );
  });
});
