/**
 * Issue #18, hypothesis check: does a download (HTTP GET + sha256 + file write) cost less CPU, and
 * delay the main event loop less, inside a worker thread than on the main thread of a process
 * that holds a daemon-sized heap? A 1 GiB object from s3rver on loopback; each transfer runs in a
 * fresh child process (the server's CPU is not counted), under the daemon's node flags.
 *
 *   npm run build:all && node dist/bench/dl-thread-ab.js
 *   DL_ROUNDS=3  DL_MIB=1024  DL_HEAP_MB=37 (live heap the child allocates first, as the Nest app has)
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { get } from 'node:http';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { S3Server as S3ServerClass } from '../test/harness/s3-server';

interface Result {
  mode: string;
  seconds: number;
  cpuSeconds: number;
  loopP99Ms: number;
  loopMaxMs: number;
  bytes: number;
}

/** GET `url` into `path`, hashing as it goes (the daemon's append(): writev batches, hash while writing). */
async function transfer(url: string, path: string, onProgress: (bytes: number) => void): Promise<string> {
  const hash = createHash('sha256');
  const file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  let bytes = 0;
  let last = 0;
  const body = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
    get(url, resolve).on('error', reject),
  );
  const sink = new Writable({
    highWaterMark: 4 * 1024 * 1024,
    writev(chunks, done) {
      const buffers = chunks.map(({ chunk }) => chunk as Buffer);
      const written = file.writev(buffers);
      for (const buffer of buffers) {
        hash.update(buffer);
        bytes += buffer.length;
      }
      written.then(() => {
        const now = Date.now();
        if (now - last >= 50) {
          last = now;
          onProgress(bytes);
        }
        done();
      }, done);
    },
    final(done) {
      file.close().then(() => done(), done);
    },
  });
  await pipeline(body, sink);
  onProgress(bytes);
  return hash.digest('hex');
}

/** A live heap of roughly `mb` MB of small objects, as a Nest app holds. */
function ballast(mb: number): unknown[] {
  const objects: unknown[] = [];
  for (let i = 0; i < mb * 1024 * 8; i++) objects.push({ i, name: `object ${i}`, list: [i, i + 1] });
  return objects;
}

async function child(mode: string, url: string, path: string): Promise<void> {
  const keep = ballast(Number(process.env.DL_HEAP_MB ?? 37));
  const delay = monitorEventLoopDelay({ resolution: 10 });
  // A timer as the daemon's status answers need: the loop's delay is what they would wait.
  const tick = setInterval(() => undefined, 5);
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  delay.enable();
  let progress = 0;
  if (mode === 'main') await transfer(url, path, (b) => (progress = b));
  else {
    await new Promise<void>((resolve, reject) => {
      const worker = new Worker(__filename, { workerData: { url, path } });
      worker.on('message', (m: { bytes?: number; done?: boolean }) => {
        if (m.bytes !== undefined) progress = m.bytes;
        if (m.done) resolve();
      });
      worker.on('error', reject);
    });
  }
  delay.disable();
  clearInterval(tick);
  const cpu = process.cpuUsage(cpu0);
  const result: Result = {
    mode,
    seconds: (Date.now() - t0) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    loopP99Ms: delay.percentile(99) / 1e6,
    loopMaxMs: delay.max / 1e6,
    bytes: progress,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  void keep;
  process.exit(0);
}

async function parent(): Promise<void> {
  const mib = Number(process.env.DL_MIB ?? 1024);
  const rounds = Number(process.env.DL_ROUNDS ?? 3);
  const dir = '/var/tmp/lvp-dl-ab';
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 's3'), { recursive: true });
  const object = join(dir, 'object.bin');
  const fd = openSync(object, 'w');
  const block = randomBytes(16 * 1024 * 1024);
  for (let i = 0; i < mib / 16; i++) writeSync(fd, block);
  closeSync(fd);
  // Required here, not at the top: the worker loads this file too, and must not load minio.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { S3Server } = require('../test/harness/s3-server') as { S3Server: typeof S3ServerClass };
  const { daemonNodeFlags } =
    require('../test/harness/node-flags') as typeof import('../test/harness/node-flags');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const s3 = await new S3Server(join(dir, 's3')).start();
  s3.seed('object.bin', object);
  const url = `http://${s3.endpoint}/images/object.bin`;
  const flags = daemonNodeFlags();
  const results: Result[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const mode of ['main', 'worker']) {
      const out = await new Promise<string>((resolve, reject) => {
        const proc = spawn(
          process.execPath,
          [...flags, __filename, 'child', mode, url, join(dir, 'out.bin')],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        let text = '';
        proc.stdout.on('data', (d: Buffer) => (text += d.toString()));
        proc.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`child exited ${code}`))));
      });
      const r = JSON.parse(out) as Result;
      results.push(r);
      const gib = r.bytes / 1024 ** 3;
      const load = execFileSync('cat', ['/proc/loadavg']).toString().split(' ').slice(0, 3).join(' ');
      console.log(
        `round ${round} ${mode.padEnd(6)} ${r.seconds.toFixed(1)} s  ${(r.cpuSeconds / gib).toFixed(2)} CPU s/GiB  ` +
          `loop p99 ${r.loopP99Ms.toFixed(1)} ms max ${r.loopMaxMs.toFixed(1)} ms  (load ${load})`,
      );
    }
  }
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
}

if (!isMainThread) {
  const { url, path } = workerData as { url: string; path: string };
  void transfer(url, path, (bytes) => parentPort!.postMessage({ bytes })).then(() =>
    parentPort!.postMessage({ done: true }),
  );
} else if (process.argv[2] === 'child') {
  void child(process.argv[3], process.argv[4], process.argv[5]);
} else {
  void parent();
}
