import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { smallQcow2 } from '../fixtures/images';

const MAIN = join(__dirname, '..', '..', 'src', 'main.js');

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  return port;
}

describe('socket activation', () => {
  it('answers the first request through the socket systemd-socket-activate hands over', async () => {
    const work = makeWorkdir('socket');
    const port = await freePort();
    const child = spawn(
      'systemd-socket-activate',
      ['-l', `127.0.0.1:${port}`, '-E', 'PATH', '-E', 'LOG_LEVEL=info', process.execPath, MAIN],
      { cwd: work.dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    try {
      // systemd-socket-activate listens at once and starts the daemon on the first connection.
      await waitFor(
        'the socket',
        async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200,
        30_000,
        200,
      );
      await waitFor('the daemon to say it was socket-activated', () =>
        /"socket_activated":true/.test(output),
      );
      const jobs = await fetch(`http://127.0.0.1:${port}/api/v1/jobs`);
      assert.equal(jobs.status, 200);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
      work.cleanup();
    }
  });
});

describe('SIGTERM', () => {
  const work = makeWorkdir('sigterm');
  const www = join(work.dir, 'www');
  const volumes = join(work.dir, 'var/volumes');
  let server: ImageServer;

  before(async () => {
    mkdirSync(www);
    for (const name of ['a', 'b', 'c']) copyFileSync(smallQcow2(), join(www, `${name}.qcow2`));
    server = await new ImageServer(www).start();
  });

  after(async () => {
    await server?.stop();
    work.cleanup();
  });

  const provision = (daemon: Daemon, name: string) =>
    daemon.provision({
      image_url: `${server.url}/${name}.qcow2`,
      volume_name: `vm-${name}`,
      volume_size_gb: 1,
      image_type: 'qcow2',
    });

  it('with a short grace: cancels and rolls back the running job, exits 0; a pending job runs after the restart', async () => {
    const env = { MAX_CONCURRENT_JOBS: '1', SHUTDOWN_GRACE: '1' };
    let daemon = await new Daemon({ dir: work.dir, env }).start();
    server.bytesPerSecond = statSync(join(www, 'a.qcow2')).size / 20; // ~20 s download
    const running = (await provision(daemon, 'a')).body.job_id;
    const pending = (await provision(daemon, 'b')).body.job_id;
    await waitFor(
      'the download to start',
      async () => (await daemon.status(running)).body.progress.stage === 'downloading' || undefined,
    );
    const exit = await daemon.stop();
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}`);
    assert.ok(daemon.logs.some((l) => l.includes('stopped cleanly')));

    server.bytesPerSecond = 0;
    daemon = await new Daemon({ dir: work.dir, env }).start();
    try {
      const cancelled = (await daemon.status(running)).body;
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.error_code, 'shutdown');
      assert.match(cancelled.error, /^cancelled by daemon shutdown: not finished within SHUTDOWN_GRACE=1 s$/);
      assert.ok(!existsSync(join(volumes, 'vm-a.raw')), 'the cancelled job was not rolled back');
      const resumed = await daemon.waitFinal(pending);
      assert.equal(resumed.status, 'completed', resumed.error);
      assert.ok(existsSync(join(volumes, 'vm-b.raw')));
    } finally {
      await daemon.stop();
    }
  });

  it('with a long grace: the running job completes before the daemon exits, and new jobs get 503', async () => {
    const daemon = await new Daemon({ dir: work.dir, env: { SHUTDOWN_GRACE: '60' } }).start();
    server.bytesPerSecond = statSync(join(www, 'c.qcow2')).size / 3; // ~3 s
    try {
      const jobId = (await provision(daemon, 'c')).body.job_id;
      await waitFor(
        'the download to start',
        async () => (await daemon.status(jobId)).body.progress.stage === 'downloading' || undefined,
      );
      process.kill(daemon.pid, 'SIGTERM');
      const refused = await waitFor('a refusal while stopping', async () => {
        const response = await provision(daemon, 'late');
        return response.status === 503 ? response : undefined;
      });
      assert.equal(refused.body.error_code, 'shutting_down');
      const exit = await daemon.stop();
      assert.equal(exit.code, 0);
      assert.ok(
        daemon.jsonLogs().some((l) => l.job_id === jobId && l.msg === 'job completed'),
        'the job did not complete before the exit',
      );
    } finally {
      server.bytesPerSecond = 0;
    }
  });
});
