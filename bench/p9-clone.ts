/**
 * P9 (issue #19): a warm provision through the API that clones a golden base, against bare
 * `qemu-img convert` of the cached image into the same kind of target (a file on the same XFS)
 * plus `sync`, interleaved round by round in one run. Goal ≤ 0.05 for the 2 GiB image, and flat in
 * image size (the 10 GiB-virtual image within 1.2× of the 2 GiB one).
 *
 *   npm run bench:p9           only this row (the full `npm run bench` includes it too)
 *   BENCH_DIR, BENCH_ROUNDS, BENCH_BIG_GIB as for `npm run bench`
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Daemon } from '../test/harness/daemon';
import { BUCKET, S3Server } from '../test/harness/s3-server';
import { basesListed, provisionViaApi } from './api-client';
import { sh, timed } from './exec';
import { buildImage, type BenchImage } from './images';
import { median, round, summarize } from './stats';

const GIB = 1024 ** 3;

export interface P9Input {
  work: string;
  rounds: number;
  /** The 2 GiB-virtual image and the big one, with their sha256. */
  images: { data: BenchImage; big: BenchImage };
  sha: { data: string; big: string };
  say: (text: string) => void;
  /** Registers a clean-up step (run in reverse order at the end, also on failure). */
  cleanup: (step: () => Promise<unknown>) => void;
}

/** An XFS (reflink=1) over a loop device, mounted under `work`: VOLUME_DIR of the daemon and the target of the baseline. */
async function xfsMount(work: string, sizeGiB: number, cleanup: P9Input['cleanup']): Promise<string> {
  const backing = join(work, 'xfs.img');
  const mountpoint = join(work, 'xfs');
  await mkdir(mountpoint, { recursive: true });
  await sh('truncate', ['-s', `${sizeGiB}G`, backing]);
  await sh('mkfs.xfs', ['-q', '-m', 'reflink=1', backing]);
  const { stdout } = await sh('losetup', ['--find', '--show', backing]);
  const loop = stdout.trim();
  cleanup(async () => {
    await sh('losetup', ['--detach', loop]);
    await rm(backing, { force: true });
  });
  await sh('mount', [loop, mountpoint]);
  cleanup(() => sh('umount', [mountpoint]));
  return mountpoint;
}

export async function measureP9(input: P9Input) {
  const { work, rounds, images, sha, say, cleanup } = input;
  const dir = join(work, 'p9');
  await mkdir(dir, { recursive: true });
  const xfs = await xfsMount(dir, 16, cleanup);
  const volumes = join(xfs, 'volumes');
  await mkdir(volumes, { recursive: true });
  const s3 = await new S3Server(join(dir, 's3')).start();
  cleanup(() => s3.stop());
  for (const key of ['data', 'big'] as const) {
    s3.seed(`${key}.qcow2`, images[key].path);
    await fetch(`http://${s3.endpoint}/${BUCKET}/${key}.qcow2`, { method: 'HEAD' });
  }
  await mkdir(join(dir, 'daemon'), { recursive: true });
  const daemon = await new Daemon({
    dir: join(dir, 'daemon'),
    env: { ...s3.daemonEnv(), VOLUME_DIR: volumes, LOG_LEVEL: 'info', RATE_LIMIT_PER_MINUTE: '100000000' },
  }).start();
  cleanup(() => daemon.stop());
  const request = (key: 'data' | 'big', volume: string) => ({
    image_url: `s3://${BUCKET}/${key}.qcow2`,
    checksum: `sha256:${sha[key]}`,
    volume_name: volume,
    volume_size_gb: images[key].virtualBytes / GIB,
    image_type: 'qcow2',
  });
  const cachePath: Record<string, string> = {};
  const baseSeconds: Record<string, number> = {};
  const verifiedAfter: Record<string, number> = {};
  for (const [index, key] of (['data', 'big'] as const).entries()) {
    say(`P9 warming ${key}: download, convert, keep its golden base`);
    const warm = await provisionViaApi(daemon, request(key, `p9-warm-${key}`), 'poll');
    if (warm.job.clone) throw new Error('P9: the first provision of an image cloned (no base can exist yet)');
    cachePath[key] = warm.job.image_path;
    baseSeconds[key] = round(warm.seconds);
    // The base is verified after the job: the clones below need it listed.
    verifiedAfter[key] = round(await basesListed(daemon, index + 1));
    await rm(join(volumes, `p9-warm-${key}.raw`), { force: true });
  }
  await sh('sync', []);
  const seconds: Record<string, Record<string, number[]>> = {};
  for (const key of ['data', 'big'] as const) {
    say(`P9 ${key}: ${rounds} rounds, clone through the API vs qemu-img convert + sync`);
    seconds[key] = { api_clone: [], qemu_img_convert: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? ['api_clone', 'qemu_img_convert'] : ['qemu_img_convert', 'api_clone'];
      for (const variant of order) {
        const volume = `p9-${key}-${variant}-${r}`;
        const target = join(volumes, `${volume}.raw`);
        if (variant === 'api_clone') {
          const result = await provisionViaApi(daemon, request(key, volume), 'sse');
          if (!result.job.clone) throw new Error(`P9: ${volume} was not cloned`);
          seconds[key][variant].push(result.seconds);
        } else {
          seconds[key][variant].push(
            await timed(async () => {
              await sh('qemu-img', ['convert', '-O', 'raw', '-f', 'qcow2', cachePath[key], target]);
              await sh('sync', [target]);
            }),
          );
        }
        await rm(target, { force: true });
      }
    }
  }
  const ratio = (key: string) => median(seconds[key].api_clone) / median(seconds[key].qemu_img_convert);
  const flat = median(seconds.big.api_clone) / median(seconds.data.api_clone);
  return {
    value: round(ratio('data')),
    goal: 'ratio ≤ 0.05 (2 GiB image, file on XFS); big image within 1.2× of it',
    detail: {
      ratios: { data_2g: round(ratio('data')), big: round(ratio('big')) },
      big_over_2g_clone_seconds: round(flat),
      flat: flat <= 1.2,
      seconds_2g: summarize(seconds.data),
      seconds_big: summarize(seconds.big),
      first_provision_seconds: baseSeconds,
      base_verified_seconds_after_it: verifiedAfter,
      target: 'files on XFS (reflink=1) over a loop device; baseline reads the cached image, page cache warm',
    },
  };
}

/** `npm run bench:p9`: this row alone, with the images `npm run bench` builds (kept in BENCH_DIR/images). */
async function runAlone(): Promise<void> {
  const benchDir = process.env.BENCH_DIR ?? '/var/tmp/lvp-bench';
  const work = join(benchDir, `p9-${process.pid}`);
  const steps: (() => Promise<unknown>)[] = [() => rm(work, { recursive: true, force: true })];
  const started = Date.now();
  const say = (text: string) =>
    process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0)} s] ${text}\n`);
  const cleanUp = async () => {
    while (steps.length > 0) await steps.pop()!().catch((e: Error) => say(`cleanup: ${e.message}`));
  };
  // A child that cannot start throws outside any await: the mount and loop device must go anyway.
  process.once('uncaughtException', (error) => {
    process.stderr.write(`P9 could not measure: ${error.stack ?? error}\n`);
    void cleanUp().finally(() => process.exit(1));
  });
  try {
    const imageDir = join(benchDir, 'images');
    const data = await buildImage(imageDir, { name: 'data', virtualGiB: 2, dataGiB: 1, compressed: false });
    const bigGiB = Number(process.env.BENCH_BIG_GIB ?? 10);
    const big = await buildImage(imageDir, {
      name: 'data',
      virtualGiB: bigGiB,
      dataGiB: 2,
      compressed: false,
    });
    const sha256 = async (path: string) => {
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
      return hash.digest('hex');
    };
    const result = await measureP9({
      work,
      rounds: Math.max(3, Number(process.env.BENCH_ROUNDS ?? 3)),
      images: { data, big },
      sha: { data: await sha256(data.path), big: await sha256(big.path) },
      say,
      cleanup: (step) => steps.push(step),
    });
    process.stdout.write(`${JSON.stringify({ P9: result }, null, 2)}\n`);
  } finally {
    await cleanUp();
  }
}

if (require.main === module) {
  runAlone().catch((error: Error) => {
    process.stderr.write(`P9 could not measure: ${error.stack ?? error}\n`);
    process.exitCode = 1;
  });
}
