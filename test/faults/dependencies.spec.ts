import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { checkInvariants, freshJobCompletes, report } from '../harness/invariants';
import { processesMentioning } from '../harness/processes';
import { BUCKET, S3Server } from '../harness/s3-server';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { slowQcow2, smallQcow2, uniqueQcow2 } from '../fixtures/images';

function sh(...args: string[]): string {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('fault: the S3 server goes away mid-transfer', () => {
  const work = makeWorkdir('s3-down');
  let s3: S3Server;
  let daemon: Daemon;

  before(async () => {
    mkdirSync(join(work.dir, 's3'));
    s3 = await new S3Server(join(work.dir, 's3')).start();
    daemon = await new Daemon({
      dir: work.dir,
      env: { ...s3.daemonEnv(), MINIO_RETRY_ATTEMPTS: '4', MINIO_RETRY_BACKOFF_MS: '800' },
    }).start();
  });

  after(async () => {
    await daemon?.stop();
    await s3?.stop();
    work.cleanup();
  });

  it('completes when the server comes back within the retry window', async () => {
    await s3.put('back.qcow2', uniqueQcow2(work.dir, 'back', 24));
    s3.cutNextDownload('back.qcow2', 2 * 1024 * 1024);
    const { body } = await daemon.provision({
      image_url: `s3://${BUCKET}/back.qcow2`,
      volume_name: 'vm-back',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    await waitFor('the first GET', () => s3.downloadsOf('back.qcow2').length >= 1);
    await s3.stop();
    await new Promise((r) => setTimeout(r, 300));
    await s3.start(s3.port);
    const final = await daemon.waitFinal(body.job_id);
    assert.equal(final.status, 'completed', final.error);
    report('S3 restart mid-transfer', { gets: s3.downloadsOf('back.qcow2').length, outcome: final.status });
  });

  it('fails with a clear message after MINIO_RETRY_ATTEMPTS when it stays away, without a retry storm', async () => {
    await s3.put('gone.qcow2', uniqueQcow2(work.dir, 'gone', 24));
    s3.cutNextDownload('gone.qcow2', 2 * 1024 * 1024);
    const before = s3.requests.length;
    const { body } = await daemon.provision({
      image_url: `s3://${BUCKET}/gone.qcow2`,
      volume_name: 'vm-gone',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    await waitFor('the first GET', () => s3.downloadsOf('gone.qcow2').length >= 1);
    const port = s3.port;
    await s3.stop();
    const final = await daemon.waitFinal(body.job_id, 60_000);
    assert.equal(final.status, 'failed');
    assert.match(final.error, /gave up after 4 tries/);
    assert.match(final.error, /ECONNREFUSED|cannot reach|broke off/);
    const requests = s3.requests.length - before;
    assert.ok(requests <= 4, `${requests} requests reached the server`);
    await s3.start(port);
    const invariants = await checkInvariants(daemon, { dir: work.dir });
    report('S3 gone', { requests_while_up: requests, error: final.error, ...invariants });
  });
});

describe('fault: full disks and killed programs', () => {
  const work = makeWorkdir('full');
  const www = join(work.dir, 'www');
  const cacheMount = join(work.dir, 'var/cache');
  const volumeMount = join(work.dir, 'var/volumes');
  const mounted: string[] = [];
  let server: ImageServer;
  let daemon: Daemon;

  /** A small real ext4 filesystem, loop-mounted at `at`. */
  function smallFilesystem(at: string, mib: number): void {
    const image = `${at}.img`;
    mkdirSync(at, { recursive: true });
    sh('truncate', '-s', `${mib}M`, image);
    sh('mkfs.ext4', '-q', '-F', image);
    sh('mount', '-o', 'loop', image, at);
    mounted.push(at);
  }

  before(async () => {
    mkdirSync(www);
    smallFilesystem(cacheMount, 48);
    smallFilesystem(volumeMount, 40);
    copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
    copyFileSync(slowQcow2(), join(www, 'slow.qcow2'));
    // 64 MiB of random data: larger than the cache filesystem.
    execFileSync('dd', ['if=/dev/urandom', `of=${join(www, 'big.raw')}`, 'bs=1M', 'count=64', 'status=none']);
    server = await new ImageServer(www).start();
    daemon = await new Daemon({ dir: work.dir, env: { CACHE_MAX_BYTES: String(200 * 1024 * 1024) } }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    for (const at of mounted.reverse()) sh('umount', '-l', at);
    work.cleanup();
  });

  it('fails a download that fills the cache filesystem with "no space left" naming it, removes the partial file, and goes on', async () => {
    const { body } = await daemon.provision({
      image_url: `${server.url}/big.raw`,
      volume_name: 'vm-big',
      volume_size_gb: 1,
      image_type: 'raw',
    });
    const final = await daemon.waitFinal(body.job_id);
    assert.equal(final.status, 'failed');
    assert.equal(final.error_code, 'no_space');
    assert.match(final.error, new RegExp(`no space left on the filesystem of ${join(cacheMount, 'tmp')}`));
    assert.deepEqual(readdirSync(join(cacheMount, 'tmp')), []);
    await freshJobCompletes(daemon, `${server.url}/small.qcow2`, 'vm-fits');
    report('cache disk full', { error: final.error });
  });

  it('fails a conversion that fills the volume filesystem, removes the volume, and goes on', async () => {
    // The compressed slow image unpacks 1 GiB of data: far more than the 40 MiB filesystem.
    const { body } = await daemon.provision({
      image_url: `${server.url}/slow.qcow2`,
      volume_name: 'vm-overflow',
      volume_size_gb: 2,
      image_type: 'qcow2',
    });
    const final = await daemon.waitFinal(body.job_id, 120_000);
    assert.equal(final.status, 'failed');
    assert.equal(final.error_code, 'no_space');
    assert.match(final.error, new RegExp(`no space left on the filesystem of ${volumeMount}`));
    assert.ok(!readdirSync(volumeMount).includes('vm-overflow.raw'));
    const invariants = await checkInvariants(daemon, { dir: work.dir, preexisting: ['lost+found'] });
    report('volume disk full', { error: final.error, ...invariants });
  });

  it('fails a job whose qemu-img is killed by a signal, naming the signal, and removes the volume', async () => {
    const { body } = await daemon.provision({
      image_url: `${server.url}/slow.qcow2`,
      volume_name: 'vm-killed',
      volume_size_gb: 2,
      image_type: 'qcow2',
    });
    const volume = join(volumeMount, 'vm-killed.raw');
    const qemu = await waitFor('qemu-img convert', () => processesMentioning(volume)[0], 60_000);
    process.kill(Number(qemu.split(':')[0]), 'SIGKILL');
    const final = await daemon.waitFinal(body.job_id);
    assert.equal(final.status, 'failed');
    assert.match(final.error, /qemu-img convert was killed by signal SIGKILL/);
    assert.ok(!readdirSync(volumeMount).includes('vm-killed.raw'));
    const failedLine = daemon.jsonLogs().find((l) => l.job_id === body.job_id && l.msg === 'job failed');
    assert.ok(failedLine, 'no "job failed" log line');
    assert.equal(failedLine.stage, 'converting');
    assert.equal(failedLine.volume_removed, true, JSON.stringify(failedLine));
    report('qemu-img killed', {
      error: final.error,
      logged_stage: failedLine.stage,
      volume_removed: failedLine.volume_removed,
    });
  });
});

describe('fault: the job database becomes read-only', () => {
  const work = makeWorkdir('readonly-db');
  const www = join(work.dir, 'www');
  let server: ImageServer;
  let daemon: Daemon;
  const db = join(work.dir, 'var/provisioner.db');

  before(async () => {
    mkdirSync(www);
    copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
    server = await new ImageServer(www).start();
    daemon = await new Daemon({ dir: work.dir }).start();
  });

  after(async () => {
    for (const f of [db, `${db}-wal`, `${db}-shm`]) execFileSync('chattr', ['-i', f], { stdio: 'ignore' });
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  it('answers 503 with a clear message, does not crash, and recovers when the file is writable again', async () => {
    await freshJobCompletes(daemon, `${server.url}/small.qcow2`, 'vm-before');
    // Root ignores file modes; the immutable attribute stops root's writes too.
    for (const f of [db, `${db}-wal`]) sh('chattr', '+i', f);
    const refused = await daemon.provision({
      image_url: `${server.url}/small.qcow2`,
      volume_name: 'vm-during',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.error_code, 'database_unavailable');
    assert.match(refused.body.message, new RegExp(db.replace(/\//g, '\\/')));
    assert.equal((await daemon.request('GET', '/livez')).status, 200, 'the daemon must stay up');
    for (const f of [db, `${db}-wal`]) sh('chattr', '-i', f);
    await freshJobCompletes(daemon, `${server.url}/small.qcow2`, 'vm-after');
    report('read-only database', { during: refused.status, message: refused.body.message });
  });
});

void writeFileSync;
