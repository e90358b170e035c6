import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { makeWorkdir } from '../harness/workdir';

const O_NONBLOCK = 0o4000;

/** The file status flags of a process's descriptor, from /proc (octal in fdinfo). */
function fdFlags(pid: number, fd: number): number {
  const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  return parseInt(/^flags:\s+(\d+)$/m.exec(info)![1], 8);
}

/**
 * The JSON log goes to stdout (journald's socket under systemd; a pipe here) with synchronous
 * writes. Node makes stdout non-blocking once anything touches process.stdout, and pino's writer
 * then answers a full pipe by sleeping 100 ms on the event loop per try (logging.ts).
 */
describe('log output of the daemon', () => {
  const work = makeWorkdir('log-output');
  let daemon: Daemon;

  before(async () => {
    daemon = await new Daemon({ dir: work.dir }).start();
  });

  after(async () => {
    await daemon?.stop();
    work.cleanup();
  });

  it('writes to a blocking stdout: a full pipe makes a log line wait for room, not for a 100 ms sleep', async () => {
    assert.equal((await daemon.request('GET', '/healthz')).status, 200); // a request has been logged
    assert.equal(fdFlags(daemon.pid, 1) & O_NONBLOCK, 0, 'stdout is non-blocking');
  });
});
