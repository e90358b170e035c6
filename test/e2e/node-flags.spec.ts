import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { daemonNodeFlags } from '../harness/node-flags';
import { repoRoot } from '../harness/repo';
import { makeWorkdir } from '../harness/workdir';

const ROOT = repoRoot();
const O_NONBLOCK = 0o4000;
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/**
 * The daemon's V8 options (docs/performance.md, P5) live in the .deb's launcher; every other way of
 * starting it must pass the same ones, or the tests and the bench would measure another program.
 */
describe('node options of the daemon', () => {
  const flags = daemonNodeFlags();

  it('the launcher bounds the young generation', () => {
    assert.ok(flags.includes('--max-semi-space-size=1'), `launcher options: ${flags.join(' ')}`);
  });

  it('the launcher caps the old generation (issue 21: RSS under load)', () => {
    assert.ok(flags.includes('--max-old-space-size=256'), `launcher options: ${flags.join(' ')}`);
  });

  it('npm start, the Dockerfile and main.js’s shebang pass the launcher’s options', () => {
    const start = JSON.parse(read('package.json')).scripts.start as string;
    assert.equal(start, ['node', ...flags, 'dist/src/main.js'].join(' '));
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'));
    assert.ok(entrypoint, 'Dockerfile has no ENTRYPOINT line');
    assert.deepEqual(JSON.parse(entrypoint[1]), [
      '/usr/local/bin/node',
      ...flags,
      '/usr/lib/libvirt-volume-provisioner/dist/src/main.js',
    ]);
    assert.equal(read('src/main.ts').split('\n')[0], ['#!/usr/bin/env -S node', ...flags].join(' '));
  });

  describe('a daemon started by the test harness', () => {
    const work = makeWorkdir('node-flags');
    let daemon: Daemon;

    before(async () => {
      daemon = await new Daemon({ dir: work.dir }).start();
    });

    after(async () => {
      await daemon?.stop();
      work.cleanup();
    });

    it('runs with them, and its new space stays at 2 x 1 MiB (as /metrics reports it)', async () => {
      const argv = readFileSync(`/proc/${daemon.pid}/cmdline`, 'utf8').split('\0');
      for (const flag of flags) assert.ok(argv.includes(flag), `${flag} missing from ${argv.join(' ')}`);
      const text = await (await fetch(`${daemon.url}/metrics`)).text();
      const match = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)$/m.exec(text);
      assert.ok(match, 'no new-space gauge in /metrics');
      assert.ok(Number(match[1]) <= 2 * 1024 * 1024, `new space is ${match[1]} bytes`);
    });

    // The JSON log goes to stdout (journald's socket under systemd; a pipe here) with synchronous
    // writes. Node makes stdout non-blocking once anything touches process.stdout, and pino's
    // writer then answers a full pipe by sleeping 100 ms on the event loop per try (logging.ts).
    it('writes its log to a blocking stdout: a full pipe makes a line wait for room, not for a 100 ms sleep', async () => {
      assert.equal((await daemon.request('GET', '/healthz')).status, 200); // a request has been logged
      const info = readFileSync(`/proc/${daemon.pid}/fdinfo/1`, 'utf8');
      const flags = parseInt(/^flags:\s+(\d+)$/m.exec(info)![1], 8); // octal
      assert.equal(flags & O_NONBLOCK, 0, 'stdout is non-blocking');
    });
  });
});
