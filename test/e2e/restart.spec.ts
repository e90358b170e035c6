import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { processesMentioning } from '../harness/processes';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { slowQcow2, smallQcow2 } from '../fixtures/images';

describe('a daemon killed with SIGKILL mid-job, started again with RESUME_INTERRUPTED=false', () => {
  const work = makeWorkdir('restart');
  const images = join(work.dir, 'www');
  const volumes = join(work.dir, 'var/volumes');
  const tmp = join(work.dir, 'var/cache/tmp');
  let server: ImageServer;
  let daemon: Daemon;
  let completedJob: string;
  let convertingJob: string;
  let downloadingJob: string;
  let pendingJob: string;
  /** The NBD export directories (socket inside) of the killed daemon's streamed write. */
  let exportDirs: () => string[];

  before(async () => {
    mkdirSync(images);
    copyFileSync(smallQcow2(), join(images, 'small.qcow2'));
    copyFileSync(slowQcow2(), join(images, 'slow.qcow2'));
    copyFileSync(smallQcow2(), join(images, 'other.qcow2'));
    server = await new ImageServer(images).start();
    daemon = await new Daemon({ dir: work.dir, env: { MAX_CONCURRENT_JOBS: '2' } }).start();

    const done = await daemon.provision({
      image_url: `${server.url}/small.qcow2`,
      volume_name: 'vm-old',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    completedJob = done.body.job_id;
    assert.equal((await daemon.waitFinal(completedJob)).status, 'completed');

    // One job converting (slow qcow2: cold, so written while it downloads, stage `streaming`, with
    // qemu-img at work long after its 2 MB arrived), one downloading from a slow server, one waiting
    // in the queue.
    convertingJob = (
      await daemon.provision({
        image_url: `${server.url}/slow.qcow2`,
        volume_name: 'vm-conv',
        volume_size_gb: 2,
        image_type: 'qcow2',
      })
    ).body.job_id;
    await waitFor(
      'the conversion to start',
      async () =>
        ((await daemon.status(convertingJob)).body.progress.stage === 'streaming' &&
          processesMentioning(join(volumes, 'vm-conv.raw')).length > 0) ||
        undefined,
    );
    server.bytesPerSecond = 256 * 1024;
    downloadingJob = (
      await daemon.provision({
        image_url: `${server.url}/other.qcow2`,
        volume_name: 'vm-dl',
        volume_size_gb: 1,
        image_type: 'qcow2',
      })
    ).body.job_id;
    pendingJob = (
      await daemon.provision({
        image_url: `${server.url}/small.qcow2`,
        volume_name: 'vm-pending',
        volume_size_gb: 1,
        image_type: 'qcow2',
      })
    ).body.job_id;
    await waitFor('a partial download on disk', () =>
      readdirSync(tmp).some((f) => statSync(join(tmp, f)).size > 0),
    );
    assert.ok(existsSync(join(volumes, 'vm-conv.raw')));
    const killed = daemon.pid;
    exportDirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith(`lvp-nbd-${killed}-`));
    assert.equal(exportDirs().length, 1, 'the streamed write has its export open');
    await daemon.kill9();
    server.bytesPerSecond = 0;
    // qemu-img runs under setpriv --pdeathsig: the kernel ends it with the daemon.
    await waitFor(
      'qemu-img to end',
      () => processesMentioning(join(volumes, 'vm-conv.raw')).length === 0,
      2_000,
    );
    // Today's behaviour, by choice: the running jobs end failed instead of resuming (resume.spec.ts).
    daemon = await new Daemon({
      dir: work.dir,
      env: { MAX_CONCURRENT_JOBS: '2', RESUME_INTERRUPTED: 'false' },
    }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  it('reports the interrupted jobs as failed with the restart reason', async () => {
    for (const id of [convertingJob, downloadingJob]) {
      const { body } = await daemon.status(id);
      assert.equal(body.status, 'failed');
      assert.equal(body.error, 'interrupted by daemon restart');
      assert.equal(body.error_code, 'interrupted');
    }
  });

  it('removed the volume the interrupted job had created, and the partial download', () => {
    assert.ok(!existsSync(join(volumes, 'vm-conv.raw')));
    assert.deepEqual(readdirSync(tmp), []);
  });

  it('removed the NBD export directory the killed daemon left, and says so', () => {
    assert.deepEqual(exportDirs(), []);
    assert.ok(
      daemon
        .jsonLogs()
        .some((line) => line.msg === 'removed the NBD export directories of a daemon that died'),
    );
  });

  it('keeps the jobs that had completed, and their volumes', async () => {
    const { body } = await daemon.status(completedJob);
    assert.equal(body.status, 'completed');
    assert.ok(existsSync(join(volumes, 'vm-old.raw')));
    assert.equal((await daemon.request('GET', '/api/v1/jobs')).body.total, 4);
  });

  it('runs the job that was still pending: queued jobs survive a crash', async () => {
    const final = await daemon.waitFinal(pendingJob, 60_000);
    assert.equal(final.status, 'completed', final.error);
    assert.equal(final.resumed, 0);
    assert.ok(existsSync(join(volumes, 'vm-pending.raw')));
  });

  it('accepts and completes a new job for the same volume afterwards', async () => {
    const { status, body } = await daemon.provision({
      image_url: `${server.url}/small.qcow2`,
      volume_name: 'vm-conv',
      volume_size_gb: 2,
      image_type: 'qcow2',
    });
    assert.equal(status, 202);
    assert.equal((await daemon.waitFinal(body.job_id)).status, 'completed');
  });
});
