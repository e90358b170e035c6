import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../harness/repo';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';

/**
 * The README's first command, run as a new user runs it: `bash scripts/demo.sh` in a fresh copy of
 * the working tree (what a clone holds: tracked and not-ignored files, no node_modules, no dist/,
 * no var/). The copy also keeps the demo's `npm run build` (which starts with `rm -rf dist`) away
 * from the dist/ the other spec files are running from.
 *
 * The first case runs the command exactly, `npm ci` included. One thing differs from a machine on
 * the internet: better-sqlite3's install script (prebuild-install) downloads its prebuilt addon from
 * github.com, and where it cannot (this test machine) compiles SQLite from source, which took 3-5
 * minutes on 2 loaded cores. The test hands it the addon this checkout already has, packed as the
 * prebuilt archive prebuild-install looks for (npm_config_better_sqlite3_local_prebuilds): `npm ci`
 * then takes about 30 s, as with the download. The second case only changes the port situation, so
 * it sets DEMO_SKIP_INSTALL=1 on the tree the first case has just installed and built.
 */
const PREFERRED_PORT = 8080;
const DEMO_TIMEOUT_MS = 9 * 60_000;

interface DemoRun {
  code: number | null;
  output: string;
}

/** Tracked and untracked-but-not-ignored files of the working tree, copied to `to`. */
function copyWorkingTree(from: string, to: string): void {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: from,
    encoding: 'utf8',
  });
  for (const path of listed.split('\0').filter(Boolean)) {
    if (!existsSync(join(from, path))) continue; // deleted in the working tree, not yet committed
    mkdirSync(dirname(join(to, path)), { recursive: true });
    cpSync(join(from, path), join(to, path), { preserveTimestamps: true });
  }
}

/**
 * A directory holding better-sqlite3's addon from this checkout's node_modules as the archive
 * prebuild-install would download (better-sqlite3-v<version>-node-v<abi>-<platform>-<arch>.tar.gz).
 */
function localPrebuilds(root: string, into: string): string {
  const addon = join(root, 'node_modules/better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(addon, 'package.json'), 'utf8')) as { version: string };
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  mkdirSync(into, { recursive: true });
  execFileSync('tar', ['-czf', join(into, name), '-C', addon, 'build/Release/better_sqlite3.node']);
  return into;
}

/** `bash scripts/demo.sh` in `dir` with a plain login-like environment (no npm_config_* of ours). */
async function runDemo(dir: string, extraEnv: Record<string, string> = {}): Promise<DemoRun> {
  const child = spawn('bash', ['scripts/demo.sh'], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** The address the demo printed in its closing summary ("  address   http://..."). */
function printedAddress(output: string): string {
  const match = /^ {2}address {3}(http:\/\/\S+)$/m.exec(output);
  assert.ok(match, `the demo printed no address:\n${tail(output)}`);
  return match[1];
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Stops the daemon the demo in `dir` left running (only if its pid file names a process in `dir`). */
async function stopDemoDaemon(dir: string): Promise<void> {
  const pidFile = join(dir, 'var/demo/daemon.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || !running(pid)) return;
  if (readlinkSync(`/proc/${pid}/cwd`) !== dir) return;
  process.kill(pid, 'SIGTERM');
  await waitFor(`the demo daemon (PID ${pid}) to exit`, () => !running(pid), 30_000);
}

/** The demo's volume compared with `qemu-img convert -O raw` of the demo image, by `cmp`. */
async function assertVolumeMatchesImage(dir: string, api: string): Promise<void> {
  const { jobs } = (await (await fetch(`${api}/api/v1/jobs?volume=demo-vm&limit=1`)).json()) as {
    jobs: { status: string; volume_path: string }[];
  };
  assert.equal(jobs[0]?.status, 'completed');
  const volume = jobs[0].volume_path;
  assert.equal(volume, join(dir, 'var/volumes/demo-vm.raw'));
  const reference = join(dir, 'var/test-reference.raw');
  execFileSync('qemu-img', [
    'convert',
    '-f',
    'qcow2',
    '-O',
    'raw',
    join(dir, 'var/demo/demo.qcow2'),
    reference,
  ]);
  // The volume is exactly 1 GiB, the image's virtual size: no truncation needed before comparing.
  execFileSync('cmp', [volume, reference]);
  execFileSync('rm', ['-f', reference]);
}

async function answersHealth(api: string): Promise<boolean> {
  const response = await fetch(`${api}/health`);
  return response.status === 200 && ((await response.json()) as { status: string }).status === 'healthy';
}

/** Holds 127.0.0.1:8080 with a server of our own, or undefined when someone else already does. */
async function holdPreferredPort(): Promise<Server | undefined> {
  const server = createServer((_request, response) => response.end('held by the quick-start test'));
  server.listen(PREFERRED_PORT, '127.0.0.1');
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
    return server;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    return undefined;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:<port>. */
async function accepts(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  try {
    await Promise.race([once(socket, 'connect'), once(socket, 'error').then(([e]) => Promise.reject(e))]);
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

describe('README quick start: bash scripts/demo.sh on a fresh clone', () => {
  const work = makeWorkdir('quickstart');
  const clone = join(work.dir, 'clone');
  let prebuilds: string;

  before(() => {
    copyWorkingTree(repoRoot(), clone);
    prebuilds = localPrebuilds(repoRoot(), join(work.dir, 'prebuilds'));
  });

  after(async () => {
    await stopDemoDaemon(clone);
    work.cleanup();
  });

  it(
    'exits 0 with a byte-exact volume, the daemon left answering at the address it printed',
    { timeout: DEMO_TIMEOUT_MS },
    async () => {
      assert.equal(existsSync(join(clone, 'var')), false, 'the copy starts without state');
      const run = await runDemo(clone, { npm_config_better_sqlite3_local_prebuilds: prebuilds });
      assert.match(run.output, /==> npm ci/);
      assert.equal(run.code, 0, `demo exited ${run.code}:\n${tail(run.output)}`);
      assert.match(run.output, /identical: 1073741824 bytes/);
      const api = printedAddress(run.output);
      // 8080, the README's address, unless something else held it when the demo looked.
      if (!run.output.includes(`127.0.0.1:${PREFERRED_PORT} is already in use`)) {
        assert.equal(api, `http://127.0.0.1:${PREFERRED_PORT}`);
      }
      assert.ok(await answersHealth(api));
      await assertVolumeMatchesImage(clone, api);
      await stopDemoDaemon(clone);
    },
  );

  it('takes a free port when 8080 is taken, and leaves the listener on 8080 alone', async () => {
    const holder = await holdPreferredPort();
    try {
      const run = await runDemo(clone, { DEMO_SKIP_INSTALL: '1' });
      assert.equal(run.code, 0, `demo exited ${run.code}:\n${tail(run.output)}`);
      assert.match(run.output, /127\.0\.0\.1:8080 is already in use; the demo daemon takes a free port/);
      const api = printedAddress(run.output);
      assert.notEqual(new URL(api).port, String(PREFERRED_PORT));
      assert.ok(await answersHealth(api));
      await assertVolumeMatchesImage(clone, api);
      if (holder) {
        assert.equal(holder.listening, true);
        assert.equal(
          await (await fetch(`http://127.0.0.1:${PREFERRED_PORT}/`)).text(),
          'held by the quick-start test',
        );
      } else {
        assert.ok(await accepts(PREFERRED_PORT), 'the other listener on 8080 is gone');
      }
    } finally {
      await stopDemoDaemon(clone);
      if (holder) {
        holder.closeAllConnections();
        holder.close();
      }
    }
  });
});
