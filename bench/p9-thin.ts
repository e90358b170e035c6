/**
 * P9 for lvm-thin (issue #19), measured INSIDE the LVM guest (real lvm2 + dm-thin): a warm
 * provision through the API that is a thin snapshot of the image's golden base, against bare
 * `qemu-img convert` of the cached image into a fresh thin LV of the same pool (lvcreate +
 * convert + sync), interleaved round by round in one run, both sides in the guest.
 *
 *   npm run bench:p9-thin     builds the images on the host, boots the guest, runs this there
 *   node test/vm/run-in-guest.mjs --disks 1 --disk-size 40G -- node dist/bench/p9-thin.js
 *
 * Settings: BENCH_ROUNDS (3), BENCH_BIG_GIB (10: virtual GiB of the big image), P9_THIN_BIG_DATA_GIB (2),
 * P9_THIN_DATA_GIB (1: data GiB of the 2 GiB image). Images are kept in .tmp/bench-images (the
 * repository is the guest's share); `--images` only builds them (on the host: much faster).
 * The guest's disk /dev/vdb becomes the volume group: run nothing else in that guest.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Daemon } from '../test/harness/daemon';
import { ImageServer } from '../test/harness/image-server';
import { basesListed, provisionViaApi } from './api-client';
import { sh, timed } from './exec';
import { buildImage, type BenchImage } from './images';
import { median, round, summarize } from './stats';

const GIB = 1024 ** 3;
const VG = 'vgbench';
const POOL = 'pool';
const root = resolve(__dirname, '..', '..');
const imageDir = join(root, '.tmp', 'bench-images');
const keys = ['data', 'big'] as const;
type Key = (typeof keys)[number];

async function images(): Promise<Record<Key, BenchImage>> {
  const dataGiB = Number(process.env.P9_THIN_DATA_GIB ?? 1);
  const bigGiB = Number(process.env.BENCH_BIG_GIB ?? 10);
  const bigDataGiB = Number(process.env.P9_THIN_BIG_DATA_GIB ?? 2);
  return {
    data: await buildImage(imageDir, { name: 'data', virtualGiB: 2, dataGiB, compressed: false }),
    big: await buildImage(imageDir, {
      name: 'data',
      virtualGiB: bigGiB,
      dataGiB: bigDataGiB,
      compressed: false,
    }),
  };
}

/** The image's sha256, kept beside it (`<image>.sha256`): hashing in the guest takes a minute a GiB. */
async function sha256(path: string): Promise<string> {
  if (existsSync(`${path}.sha256`)) return readFileSync(`${path}.sha256`, 'utf8').trim();
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 }))
    hash.update(chunk as Buffer);
  const hex = hash.digest('hex');
  writeFileSync(`${path}.sha256`, `${hex}\n`);
  return hex;
}

/** The whole of /dev/vdb as one VG with a thin pool on 90 % of it. */
async function makePool(): Promise<void> {
  await sh('pvcreate', ['--yes', '/dev/vdb']);
  await sh('vgcreate', [VG, '/dev/vdb']);
  await sh('lvcreate', ['--yes', '--type', 'thin-pool', '-l', '90%VG', '-n', POOL, VG]);
}

async function measure(say: (text: string) => void, steps: (() => Promise<unknown>)[]) {
  const rounds = Math.max(3, Number(process.env.BENCH_ROUNDS ?? 3));
  const work = join(root, '.tmp', `p9-thin-${process.pid}`);
  steps.push(() => rm(work, { recursive: true, force: true }));
  const image = await images();
  const sha = { data: await sha256(image.data.path), big: await sha256(image.big.path) };
  await makePool();
  // Plain HTTP (s3rver needs minutes per GiB under TCG); a warm job only asks the source for a HEAD.
  const server = await new ImageServer(imageDir).start();
  steps.push(() => server.stop());
  await mkdir(join(work, 'daemon'), { recursive: true });
  const env = { VOLUME_BACKEND: 'lvm-thin', LVM_VOLUME_GROUP: VG, LVM_THIN_POOL: POOL, LOG_LEVEL: 'info' };
  const daemon = await new Daemon({
    dir: join(work, 'daemon'),
    env: { ...env, RATE_LIMIT_PER_MINUTE: '100000000' },
    startTimeoutMs: 900_000,
  }).start();
  steps.push(() => daemon.stop());
  const request = (key: Key, volume: string) => ({
    image_url: `${server.url}/${basename(image[key].path)}`,
    checksum: `sha256:${sha[key]}`,
    volume_name: volume,
    volume_size_gb: image[key].virtualBytes / GIB,
    image_type: 'qcow2',
  });
  const cachePath: Record<string, string> = {};
  const firstSeconds: Record<string, number> = {};
  const verifiedAfter: Record<string, number> = {};
  const seconds: Record<string, Record<string, number[]>> = {};
  // Each image is warmed and then measured before the next is warmed (warming the big one hashes
  // its whole virtual size in the guest: minutes), so the 2 GiB figure comes first.
  for (const [index, key] of keys.entries()) {
    say(`P9-thin warming ${key}: download, convert, keep its golden base LV`);
    const warm = await provisionViaApi(daemon, request(key, `p9-warm-${key}`), 'poll');
    if (warm.job.clone) throw new Error('P9-thin: the first provision of an image cloned');
    cachePath[key] = warm.job.image_path;
    firstSeconds[key] = round(warm.seconds);
    // The base is verified after the job: the clones below need it listed.
    verifiedAfter[key] = round(await basesListed(daemon, index + 1));
    say(`P9-thin warmed ${key} in ${firstSeconds[key]} s, its base verified ${verifiedAfter[key]} s later`);
    await sh('lvremove', ['--yes', `${VG}/p9-warm-${key}`]);
    await sh('sync', []);
    say(`P9-thin ${key}: ${rounds} rounds, clone through the API vs lvcreate + qemu-img convert + sync`);
    seconds[key] = { api_clone: [], qemu_img_convert: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? ['api_clone', 'qemu_img_convert'] : ['qemu_img_convert', 'api_clone'];
      for (const variant of order) {
        const volume = `p9-${key}-${variant}-${r}`;
        const target = `/dev/${VG}/${volume}`;
        if (variant === 'api_clone') {
          const result = await provisionViaApi(daemon, request(key, volume), 'sse');
          if (!result.job.clone) throw new Error(`P9-thin: ${volume} was not cloned`);
          seconds[key][variant].push(result.seconds);
        } else {
          seconds[key][variant].push(
            await timed(async () => {
              const size = `${image[key].virtualBytes}b`;
              await sh('lvcreate', ['--yes', '-V', size, '--thinpool', `${VG}/${POOL}`, '-n', volume, VG]);
              // As the daemon converts into a fresh thin LV: it reads zeros, so zeros are skipped.
              const args = ['convert', '-n', '--target-is-zero', '-f', 'qcow2', '-O', 'raw'];
              await sh('qemu-img', [...args, cachePath[key], target]);
              await sh('sync', []);
            }),
          );
        }
        await sh('lvremove', ['--yes', `${VG}/${volume}`]);
      }
    }
    // Said as soon as it is known: a run cut short by its timeout still leaves this image's figures.
    const api = median(seconds[key].api_clone);
    const bare = median(seconds[key].qemu_img_convert);
    say(
      `P9-thin ${key}: median API clone ${round(api)} s, bare convert ${round(bare)} s, ratio ${round(api / bare)}`,
    );
  }
  const ratio = (key: string) => median(seconds[key].api_clone) / median(seconds[key].qemu_img_convert);
  const flat = median(seconds.big.api_clone) / median(seconds.data.api_clone);
  return {
    value: round(ratio('data')),
    goal: 'ratio for the 2 GiB image; big image clone within 1.2× of it (the goal ≤ 0.05 is for file volumes)',
    detail: {
      ratios: { data_2g: round(ratio('data')), big: round(ratio('big')) },
      big_over_2g_clone_seconds: round(flat),
      flat: flat <= 1.2,
      seconds_2g: summarize(seconds.data),
      seconds_big: summarize(seconds.big),
      first_provision_seconds: firstSeconds,
      base_verified_seconds_after_it: verifiedAfter,
      images: Object.fromEntries(
        keys.map((k) => [k, { virtual: image[k].virtualBytes, data: image[k].dataBytes }]),
      ),
      target: 'thin LVs in one pool on the guest virtio disk (QEMU TCG); baseline reads the cached image',
    },
  };
}

async function main(): Promise<void> {
  if (process.argv.includes('--images')) {
    for (const built of Object.values(await images())) await sha256(built.path);
    return;
  }
  const steps: (() => Promise<unknown>)[] = [];
  const started = Date.now();
  const say = (text: string) =>
    process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0)} s] ${text}\n`);
  try {
    process.stdout.write(`${JSON.stringify({ 'P9-thin': await measure(say, steps) }, null, 2)}\n`);
  } finally {
    while (steps.length > 0) await steps.pop()!().catch((e: Error) => say(`cleanup: ${e.message}`));
  }
}

main().catch((error: Error) => {
  process.stderr.write(`P9-thin could not measure: ${error.stack ?? error}\n`);
  process.exitCode = 1;
});
