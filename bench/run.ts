/**
 * `npm run bench` (issue #6): measures the daemon against the plain tools in one run, variants
 * interleaved round by round so that the other work on this machine hits every variant alike.
 * Prints one table (P1-P5 and P9 beside their goals) and writes it to bench/results/latest.json.
 * Exits non-zero only when something could not be measured, never because a goal was missed.
 *
 *   BENCH_DIR      work folder, images kept between runs (default /var/tmp/lvp-bench)
 *   BENCH_ROUNDS   rounds of each A/B comparison (default 3, at least 3 for a median)
 *   BENCH_BIG_GIB  virtual size of P5's big image (default 10)
 *   BENCH_LOAD_SECONDS  length of each P4 load run (default 4)
 *   BENCH_ONLY     rows to run, e.g. P8,P10 (default all). P1-P5 and P9 run as one group (they
 *                  share a daemon and feed each other), P8 and P1@110 as another (stream-rows.ts)
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Daemon } from '../test/harness/daemon';
import { BUCKET, S3Server } from '../test/harness/s3-server';
import { evict, provisionViaApi } from './api-client';
import { provisionBlock, type LvKind } from './block-path';
import { sh, timed } from './exec';
import { load, type LoadResult } from './http-load';
import { buildImage, type BenchImage } from './images';
import { measureP9 } from './p9-clone';
import { measureStreamRows, streamTableRows } from './stream-rows';
import { blockStat, LoopDevice } from './loop';
import { formatTable, median, round, spread, summarize, type Row } from './stats';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const ROOT = resolve(__dirname, '..', '..');

const OLD_ROWS = ['P1', 'P2', 'P3', 'P4', 'P5', 'P9'];
const STREAM_ROWS = ['P8', 'P1@110', 'P10'];

const config = {
  dir: process.env.BENCH_DIR ?? '/var/tmp/lvp-bench',
  rounds: Math.max(3, Number(process.env.BENCH_ROUNDS ?? 3)),
  bigGiB: Number(process.env.BENCH_BIG_GIB ?? 10),
  loadSeconds: Number(process.env.BENCH_LOAD_SECONDS ?? 4),
  only: wantedRows(process.env.BENCH_ONLY),
};

/** BENCH_ONLY as a set of row ids (all rows when unset); an unknown id stops the bench. */
function wantedRows(value: string | undefined): Set<string> {
  if (!value?.trim()) return new Set([...OLD_ROWS, ...STREAM_ROWS]);
  const ids = value.split(',').map((id) => id.trim().toUpperCase());
  for (const id of ids) {
    if (![...OLD_ROWS, ...STREAM_ROWS].includes(id))
      throw new Error(`BENCH_ONLY: no row ${id} (rows: ${[...OLD_ROWS, ...STREAM_ROWS].join(', ')})`);
  }
  return new Set(ids);
}
const wants = (ids: string[]) => ids.some((id) => config.only.has(id));

interface Result {
  value: number;
  goal: string;
  detail: Record<string, unknown>;
}

const benchStart = Date.now();
const say = (text: string) =>
  process.stderr.write(`[bench ${((Date.now() - benchStart) / 1000).toFixed(0)} s] ${text}\n`);

/** Runs each variant once per round, rotating the order so no variant always goes first. */
async function interleave<T>(
  rounds: number,
  variants: Record<string, (round: number) => Promise<T>>,
): Promise<Record<string, T[]>> {
  const names = Object.keys(variants);
  const out: Record<string, T[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + r) % names.length];
      out[name].push(await variants[name](r));
    }
  }
  return out;
}

async function sha256File(path: string): Promise<string> {
  const memo = `${path}.sha256`;
  if (existsSync(memo)) return readFileSync(memo, 'utf8').trim();
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MIB })) hash.update(chunk as Buffer);
  const hex = hash.digest('hex');
  writeFileSync(memo, `${hex}\n`);
  return hex;
}

/** The plain way to do it, ending durable like the daemon: `sync FILE` fsyncs the target. */
async function qemuImgDefault(image: string, target: string): Promise<void> {
  await sh('qemu-img', ['convert', '-O', 'raw', '-f', 'qcow2', image, target]);
  await sh('sync', [target]);
}

/**
 * The cache's expanded copy of an image (its bytes, and the seconds the daemon took to write it),
 * waiting up to `timeoutMs` for the background step; null when there is none.
 */
async function expandedCopyOf(
  daemon: Daemon,
  sha256: string,
  timeoutMs: number,
): Promise<{ bytes: number; seconds: number } | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await daemon.request('GET', '/api/v1/cache');
    const entry = (body.entries as { sha256: string; expanded_bytes: number }[]).find(
      (e) => e.sha256 === sha256,
    );
    if (entry && entry.expanded_bytes > 0) {
      const line = daemon
        .jsonLogs()
        .find((l) => l.msg === 'expanded compressed qcow2 into the cache' && l.sha256 === sha256);
      return { bytes: entry.expanded_bytes, seconds: Number(line?.seconds ?? NaN) };
    }
    if (Date.now() >= deadline) return null;
    await sleep(200);
  }
}

function rss(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024 };
}

async function main(): Promise<Record<string, Result>> {
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (losetup, mount)');
  for (const tool of ['qemu-img', 'losetup', 'curl', 'sha256sum', 'mkfs.ext4', 'mkfs.xfs', 'mount']) {
    await sh('which', [tool]).catch(() => {
      throw new Error(`${tool} is missing (see README: setup)`);
    });
  }
  const work = join(config.dir, `run-${process.pid}`);
  await mkdir(work, { recursive: true });
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  const results: Record<string, Result> = {};
  try {
    say('images (built once per machine, kept in BENCH_DIR/images)');
    const imageDir = join(config.dir, 'images');
    const data = await buildImage(imageDir, { name: 'data', virtualGiB: 2, dataGiB: 1, compressed: false });
    const text = await buildImage(imageDir, { name: 'text', virtualGiB: 2, dataGiB: 1, compressed: true });
    // The big image serves P5 and P9 only; without them its place is taken by `data` (not timed).
    const big = wants(OLD_ROWS)
      ? await buildImage(imageDir, { name: 'data', virtualGiB: config.bigGiB, dataGiB: 2, compressed: false })
      : data;
    const images = { data, text, big };
    const sha: Record<string, string> = {};
    for (const [key, image] of Object.entries(images)) sha[key] = await sha256File(image.path);

    const s3 = await new S3Server(join(work, 's3')).start();
    cleanups.push(() => s3.stop());
    for (const key of Object.keys(images)) s3.seed(`${key}.qcow2`, images[key as keyof typeof images].path);
    // s3rver computes an object's etag (md5) on first access: do that before anything is timed.
    for (const key of Object.keys(images))
      await fetch(`http://${s3.endpoint}/${BUCKET}/${key}.qcow2`, { method: 'HEAD' });

    if (wants(STREAM_ROWS)) {
      const stream = await measureStreamRows({
        work,
        rounds: config.rounds,
        s3,
        images: { data, text },
        sha: { data: sha.data, text: sha.text },
        only: config.only,
        say,
        cleanup: (step) => cleanups.push(step),
        interleave,
      });
      Object.assign(results, stream);
    }
    if (!wants(OLD_ROWS)) return results;

    const daemonEnv = (volumeDir: string): Record<string, string> => ({
      ...s3.daemonEnv(),
      VOLUME_BACKEND: 'file',
      VOLUME_DIR: volumeDir,
      LOG_LEVEL: 'info',
      RATE_LIMIT_PER_MINUTE: '100000000',
    });
    const volumeDir = join(work, 'daemon', 'volumes');
    await mkdir(volumeDir, { recursive: true });
    const daemon = await new Daemon({ dir: join(work, 'daemon'), env: daemonEnv(volumeDir) }).start();
    cleanups.push(() => daemon.stop());
    const request = (key: keyof typeof images, volume: string) => ({
      image_url: `s3://${BUCKET}/${key}.qcow2`,
      checksum: `sha256:${sha[key]}`,
      volume_name: volume,
      volume_size_gb: images[key].virtualBytes / GIB,
      image_type: 'qcow2',
    });
    const removeVolume = (name: string) => rm(join(volumeDir, `${name}.raw`), { force: true });
    let lastJobId = '';
    const cacheDurable: number[] = [];
    const viaApi = async (
      key: keyof typeof images,
      volume: string,
      follow: 'sse' | 'poll',
      cold: boolean,
    ) => {
      if (cold) await evict(daemon, sha[key]);
      const result = await provisionViaApi(daemon, request(key, volume), follow);
      if (result.job.cache_hit === cold) throw new Error(`expected cache_hit=${!cold} for ${volume}`);
      // The daemon fsyncs a new download after its job; `sync` waits for that (and anything else
      // dirty) so it does not land on the next variant's clock. Its time is reported, not hidden.
      if (cold) cacheDurable.push(await timed(() => sh('sync', [])));
      lastJobId = result.job.job_id;
      await removeVolume(volume);
      return result;
    };

    // ---- P1: cold provision ------------------------------------------------------------------
    say(`P1 cold provision, ${config.rounds} rounds`);
    const scriptDir = join(work, 'script');
    await mkdir(scriptDir, { recursive: true });
    const p1 = await interleave(config.rounds, {
      api_sse: async (r) => (await viaApi('data', `p1-sse-${r}`, 'sse', true)).seconds,
      api_poll: async (r) => (await viaApi('data', `p1-poll-${r}`, 'poll', true)).seconds,
      script: async (r) => {
        const download = join(scriptDir, 'image.qcow2');
        const target = join(volumeDir, `p1-script-${r}.raw`);
        const seconds = await timed(async () => {
          await sh('curl', ['-sS', '--fail', '-o', download, `http://${s3.endpoint}/${BUCKET}/data.qcow2`]);
          const { stdout } = await sh('sha256sum', [download]);
          if (!stdout.startsWith(sha.data)) throw new Error('script: sha256 mismatch');
          await qemuImgDefault(download, target);
        });
        await rm(download, { force: true });
        await rm(target, { force: true });
        return seconds;
      },
    });
    results.P1 = {
      value: round(median(p1.api_sse) / median(p1.script)),
      goal: 'ratio ≤ 0.6',
      detail: {
        seconds: summarize(p1),
        sse_cost_ratio: round(median(p1.api_sse) / median(p1.api_poll)),
        sync_after_cold_job_s: round(median(cacheDurable)),
        target: 'file volume (VOLUME_BACKEND=file) on the host filesystem',
        script: 'curl GET → sha256sum → qemu-img convert -O raw → sync FILE',
      },
    };

    // ---- P2: warm provision ------------------------------------------------------------------
    say(`P2 warm provision, ${config.rounds} rounds`);
    const cachePath: Record<string, string> = {};
    const expandedCopy: Record<string, { bytes: number; seconds: number } | null> = {};
    for (const key of ['data', 'text'] as const) {
      const warmup = await provisionViaApi(daemon, request(key, `p2-warmup-${key}`), 'poll');
      cachePath[key] = warmup.job.image_path;
      // A qcow2 with compressed clusters gets an expanded copy in the cache after its first job;
      // the timed rounds are the cache hits that follow, which read it.
      expandedCopy[key] = await expandedCopyOf(daemon, sha[key], key === 'text' ? 600_000 : 0);
      if (key === 'text' && !expandedCopy[key]) throw new Error('no expanded copy of the compressed qcow2');
      await sh('sync', []);
      await removeVolume(`p2-warmup-${key}`);
    }
    const p2file: Record<string, Record<string, number[]>> = {};
    for (const key of ['data', 'text'] as const) {
      // The baseline reads the image as published (what an operator has), not the daemon's cached
      // or expanded copy; read once first so that it, too, comes from the page cache.
      const published = images[key].path;
      for await (const chunk of createReadStream(published, { highWaterMark: 4 * MIB })) void chunk;
      p2file[key] = await interleave(config.rounds, {
        api_sse: async (r) => (await viaApi(key, `p2-${key}-sse-${r}`, 'sse', false)).seconds,
        api_poll: async (r) => (await viaApi(key, `p2-${key}-poll-${r}`, 'poll', false)).seconds,
        qemu_img_default: async (r) => {
          const target = join(volumeDir, `p2-${key}-default-${r}.raw`);
          const seconds = await timed(() => qemuImgDefault(published, target));
          await rm(target, { force: true });
          return seconds;
        },
      });
    }
    // Block devices: each run gets a fresh loop device over a fresh sparse file.
    const written: Record<string, number[]> = { thin: [], thick: [], qemu_img_default: [] };
    let directIo = '';
    const onLoop = async (name: string, step: (device: string) => Promise<unknown>) => {
      const loop = await LoopDevice.create(join(work, `loop-${name}.img`), data.virtualBytes);
      try {
        directIo = readFileSync(`/sys/block/${loop.device.slice(5)}/loop/dio`, 'utf8').trim();
        const before = loop.bytesWritten();
        const seconds = await timed(() => step(loop.device));
        written[name].push(loop.bytesWritten() - before);
        return seconds;
      } finally {
        await loop.destroy();
      }
    };
    const blockVariant = (kind: LvKind) => () =>
      onLoop(kind, (device) =>
        provisionBlock(kind, device, data.virtualBytes, { ...data, path: cachePath.data }),
      );
    const p2loop = await interleave(config.rounds, {
      thin: blockVariant('thin'),
      thick: blockVariant('thick'),
      qemu_img_default: () => onLoop('qemu_img_default', (device) => qemuImgDefault(cachePath.data, device)),
    });
    const ratios = {
      file_data: median(p2file.data.api_sse) / median(p2file.data.qemu_img_default),
      file_compressed: median(p2file.text.api_sse) / median(p2file.text.qemu_img_default),
      loop_thin: median(p2loop.thin) / median(p2loop.qemu_img_default),
      loop_thick: median(p2loop.thick) / median(p2loop.qemu_img_default),
    };
    results.P2 = {
      value: round(Math.max(...Object.values(ratios))),
      goal: 'ratio ≤ 0.6 (worst of the targets)',
      detail: {
        ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v)])),
        seconds_file_data: summarize(p2file.data),
        seconds_file_compressed_qcow2: summarize(p2file.text),
        expanded_copy_compressed_qcow2: expandedCopy.text,
        baseline_reads: 'the image as published (BENCH_DIR/images), page cache warm',
        seconds_loop: summarize(p2loop),
        sse_cost_ratio: round(median(p2file.data.api_sse) / median(p2file.data.api_poll)),
        loop_direct_io: directIo === '1',
        loop_note:
          'loop: the real LvmThinBackend/LvmBackend + QemuImg.convert + clearTail with an lvm CLI stand-in (no device-mapper here)',
      },
    };

    // ---- P5 (and P3's file volume): peak RSS of a fresh daemon per image size ------------------
    say('P5 peak RSS: a fresh daemon per image size, volumes on ext4 over a loop device');
    const fsLoop = await LoopDevice.create(join(work, 'ext4.img'), big.virtualBytes + 4 * GIB);
    cleanups.push(() => fsLoop.destroy());
    await sh('mkfs.ext4', ['-q', '-E', 'lazy_itable_init=0,lazy_journal_init=0', fsLoop.device]);
    const mountPoint = join(work, 'ext4');
    await mkdir(mountPoint, { recursive: true });
    await sh('mount', [fsLoop.device, mountPoint]);
    cleanups.push(() => sh('umount', [mountPoint]));
    const p5: Record<
      string,
      { idle: number; peak: number; sampledPeak: number; seconds: number; written: number }
    > = {};
    for (const key of ['data', 'big'] as const) {
      const dir = join(work, `p5-${key}`);
      await mkdir(dir, { recursive: true });
      const volumes = join(mountPoint, key);
      await mkdir(volumes, { recursive: true });
      const fresh = await new Daemon({ dir, env: daemonEnv(volumes) }).start();
      try {
        await sleep(500); // let start-up settle before reading the idle figure
        const idle = rss(fresh.pid).rss;
        let sampledPeak = idle;
        const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, rss(fresh.pid).rss)), 100);
        await sh('sync', ['-f', mountPoint]);
        const before = blockStat(fsLoop.device).sectorsWritten;
        const result = await provisionViaApi(fresh, request(key, `p5-${key}`), 'sse');
        await sh('sync', ['-f', mountPoint]);
        const writtenBytes = (blockStat(fsLoop.device).sectorsWritten - before) * 512;
        clearInterval(sampler);
        p5[key] = {
          idle,
          peak: rss(fresh.pid).hwm,
          sampledPeak,
          seconds: result.seconds,
          written: writtenBytes,
        };
      } finally {
        await fresh.stop();
        await rm(volumes, { recursive: true, force: true });
      }
    }
    const mib = (bytes: number) => round(bytes / MIB, 1);
    const flat = Math.abs(p5.big.peak - p5.data.peak) <= 0.1 * p5.data.peak;
    results.P5 = {
      value: mib(p5.big.peak),
      goal: '< 150 MiB and flat with image size (within 10 %)',
      detail: {
        flat,
        [`peak_rss_mib_${config.bigGiB}g`]: mib(p5.big.peak),
        peak_rss_mib_2g: mib(p5.data.peak),
        idle_rss_mib: mib(p5.data.idle),
        sampled_peak_mib: { '2g': mib(p5.data.sampledPeak), [`${config.bigGiB}g`]: mib(p5.big.sampledPeak) },
        provision_seconds: { '2g': round(p5.data.seconds), [`${config.bigGiB}g`]: round(p5.big.seconds) },
        note: 'cold provision (download + convert) with an SSE client; VmHWM of a fresh daemon process',
      },
    };

    // ---- P3: bytes written vs the image's data ----------------------------------------------------
    const writtenRatio = (bytes: number[], image: BenchImage) => round(median(bytes) / image.dataBytes);
    const p3 = {
      loop_thin: writtenRatio(written.thin, data),
      file_ext4_on_loop_2g: round(p5.data.written / data.dataBytes),
      [`file_ext4_on_loop_${config.bigGiB}g`]: round(p5.big.written / big.dataBytes),
    };
    results.P3 = {
      value: Math.max(...Object.values(p3)),
      goal: '≤ 1.05 where the target reads zeros',
      detail: {
        ratios: p3,
        not_known_zero: {
          loop_thick: writtenRatio(written.thick, data),
          loop_qemu_img_default: writtenRatio(written.qemu_img_default, data),
        },
        image_data_mib: { '2g': mib(data.dataBytes), [`${config.bigGiB}g`]: mib(big.dataBytes) },
        counter:
          '/sys/block/loopN/stat sectors written (write-zeroes count as writes), file: incl. ext4 journal',
      },
    };

    // ---- P4: status endpoint under load vs bare Fastify ----------------------------------------------
    say(`P4 HTTP load, ${config.rounds} rounds of ${config.loadSeconds} s each`);
    const hello = spawn(process.execPath, [join(__dirname, 'hello-server.js')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(async () => hello.kill('SIGTERM'));
    const helloPort = await new Promise<number>((done, fail) => {
      hello.stdout.once('data', (chunk) => done(Number(String(chunk).trim())));
      hello.once('exit', () => fail(new Error('hello server exited')));
    });
    const statusUrl = `${daemon.url}/api/v1/status/${lastJobId}`;
    const probe = await daemon.request('GET', `/api/v1/status/${lastJobId}`);
    if (probe.status !== 200) throw new Error(`status of ${lastJobId}: ${probe.status}`);
    const connections = 10;
    const p4 = await interleave<LoadResult>(config.rounds, {
      bare_fastify: () => load(`http://127.0.0.1:${helloPort}/hello`, config.loadSeconds, connections),
      daemon_status: () => load(statusUrl, config.loadSeconds, connections),
    });
    for (const runs of Object.values(p4)) {
      if (runs.some((r) => r.errors > 0 || r.non2xx > 0))
        throw new Error(`P4: errors under load ${JSON.stringify(runs)}`);
    }
    const rps = (name: string) => median(p4[name].map((r) => r.requestsPerSecond));
    const p99 = (name: string) => median(p4[name].map((r) => r.p99Ms));
    results.P4 = {
      value: round(rps('daemon_status') / rps('bare_fastify')),
      goal: 'ratio ≥ 0.5, p99 < 10 ms',
      detail: {
        requests_per_second: {
          daemon_status: round(rps('daemon_status'), 0),
          bare_fastify: round(rps('bare_fastify'), 0),
        },
        p99_ms: { daemon_status: p99('daemon_status'), bare_fastify: p99('bare_fastify') },
        runs: p4,
        connections,
        seconds_per_run: config.loadSeconds,
      },
    };

    // ---- P9: warm provision as a reflink clone of a golden base (XFS) vs bare qemu-img convert ----
    results.P9 = await measureP9({
      work,
      rounds: config.rounds,
      images: { data, big },
      sha: { data: sha.data, big: sha.big },
      say,
      cleanup: (step) => cleanups.push(step),
    });
    return results;
  } finally {
    await cleanUp();
  }
}

/** Undo steps (loop devices, mounts, servers), run in reverse also on Ctrl-C or a crash. */
const cleanups: (() => Promise<unknown>)[] = [];

async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) {
    await cleanups.pop()!().catch((e) => say(`cleanup: ${(e as Error).message}`));
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
}
process.once('uncaughtException', (error) => {
  process.stderr.write(`bench could not measure: ${error.stack ?? error}\n`);
  void cleanUp().finally(() => process.exit(1));
});

function rows(results: Record<string, Result>): Row[] {
  return [...(results.P1 ? oldRows(results) : []), ...streamTableRows(results)];
}

function oldRows(results: Record<string, Result>): Row[] {
  const { P1, P2, P3, P4, P5, P9 } = results;
  const s = (d: unknown) => d as Record<string, any>;
  const p1 = s(P1.detail).seconds;
  const p2 = s(P2.detail);
  const p4 = s(P4.detail);
  const p5 = s(P5.detail);
  return [
    {
      id: 'P1',
      what: `cold, file: API+SSE ${p1.api_sse.median} s / GET+sha256sum+convert+sync ${p1.script.median} s`,
      value: P1.value,
      unit: '',
      goal: P1.goal,
      met: P1.value <= 0.6,
    },
    {
      id: 'P2',
      what: `warm vs qemu-img default+sync: ${Object.entries(p2.ratios)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
      value: P2.value,
      unit: '',
      goal: P2.goal,
      met: P2.value <= 0.6,
    },
    {
      id: 'P3',
      what: `written / image data: ${Object.entries(s(P3.detail).ratios)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
      value: P3.value,
      unit: '',
      goal: P3.goal,
      met: P3.value <= 1.05,
    },
    {
      id: 'P4',
      what: `status ${p4.requests_per_second.daemon_status}/s vs bare Fastify ${p4.requests_per_second.bare_fastify}/s, p99 ${p4.p99_ms.daemon_status} ms`,
      value: P4.value,
      unit: '',
      goal: P4.goal,
      met: P4.value >= 0.5 && p4.p99_ms.daemon_status < 10,
    },
    {
      id: 'P5',
      what: `peak RSS ${config.bigGiB} GiB image ${P5.value} MiB, 2 GiB ${p5.peak_rss_mib_2g} MiB (idle ${p5.idle_rss_mib})`,
      value: P5.value,
      unit: 'MiB',
      goal: P5.goal,
      met: P5.value < 150 && p5.flat === true,
    },
    {
      id: 'P9',
      what: `warm clone / qemu-img convert, file on XFS: 2 GiB ${P9.value}, ${config.bigGiB} GiB ${s(P9.detail).ratios.big}`,
      value: P9.value,
      unit: '',
      goal: P9.goal,
      met: P9.value <= 0.05 && s(P9.detail).flat === true,
    },
  ];
}

async function commit(): Promise<string> {
  return (
    await sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']).catch(() => ({ stdout: 'unknown' }))
  ).stdout.trim();
}

void (async () => {
  const started = Date.now();
  const loadBefore = loadavg()[0];
  try {
    const results = await main();
    const table = rows(results);
    const meta = {
      commit: await commit(),
      date: new Date().toISOString(),
      rounds: config.rounds,
      seconds: round((Date.now() - started) / 1000, 1),
      loadavg_1min: { before: loadBefore, after: loadavg()[0] },
    };
    // Noise: how far apart the repeated runs of each timed variant were.
    const noise = results.P1
      ? {
          p1_spread: round(spread((results.P1.detail.seconds as any).api_sse.runs)),
          p1_script_spread: round(spread((results.P1.detail.seconds as any).script.runs)),
        }
      : {};
    await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
    const out = { ...results, meta: { ...meta, only: [...config.only], noise } };
    // A BENCH_ONLY run does not overwrite the full run's file.
    const file =
      config.only.size === OLD_ROWS.length + STREAM_ROWS.length ? 'latest.json' : 'latest-only.json';
    writeFileSync(join(ROOT, 'bench', 'results', file), `${JSON.stringify(out, null, 2)}\n`);
    process.stdout.write(`\n${formatTable(table)}\n\n`);
    process.stdout.write(
      `commit ${meta.commit}, ${meta.rounds} rounds interleaved, ${meta.seconds} s, load ${loadBefore.toFixed(2)} → ${loadavg()[0].toFixed(2)}; details: bench/results/${file}\n`,
    );
  } catch (error) {
    process.stderr.write(`bench could not measure: ${(error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  }
})();
