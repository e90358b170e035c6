/**
 * `npm run bench:knobs`: the effect of each qemu-img write-path knob, one at a time, on a fresh
 * sparse file and on a fresh loop device, interleaved over rounds. Every variant ends durable
 * (qemu-img's default cache mode `unsafe` never flushes, so those get a `sync FILE`).
 * Writes bench/results/knobs.json and prints a table of medians.
 */
import { writeFileSync } from 'node:fs';
import { mkdir, rm, truncate } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { sh, timed } from './exec';
import { buildImage, type BenchImage } from './images';
import { LoopDevice } from './loop';
import { median, round } from './stats';

const ROOT = resolve(__dirname, '..', '..');
const dir = process.env.BENCH_DIR ?? '/var/tmp/lvp-bench';
const rounds = Math.max(3, Number(process.env.BENCH_ROUNDS ?? 3));

/** Flags after `convert`, before the file names; `flushes` says whether qemu-img flushes itself. */
const VARIANTS: Record<string, { flags: string[]; flushes: boolean }> = {
  'default (+sync)': { flags: [], flushes: false },
  '-W (+sync)': { flags: ['-W'], flushes: false },
  '-m 16 -W (+sync)': { flags: ['-m', '16', '-W'], flushes: false },
  '-t writeback': { flags: ['-t', 'writeback'], flushes: true },
  '-t writeback -W': { flags: ['-t', 'writeback', '-W'], flushes: true },
  '-t none': { flags: ['-t', 'none'], flushes: true },
  '-t none -W': { flags: ['-t', 'none', '-W'], flushes: true },
  '-t none -W -m 16': { flags: ['-t', 'none', '-W', '-m', '16'], flushes: true },
  '-t none -W --target-is-zero': { flags: ['-t', 'none', '-W', '--target-is-zero'], flushes: true },
  '-t none -W -T none': { flags: ['-t', 'none', '-W', '-T', 'none'], flushes: true },
  '-t writeback -W --target-is-zero': { flags: ['-t', 'writeback', '-W', '--target-is-zero'], flushes: true },
};

async function convert(image: BenchImage, target: string, variant: { flags: string[]; flushes: boolean }) {
  // -n: the target exists (a fresh sparse file or device), as the daemon's volumes do.
  await sh('qemu-img', ['convert', '-n', ...variant.flags, '-f', 'qcow2', '-O', 'raw', image.path, target]);
  if (!variant.flushes) await sh('sync', [target]);
}

async function main(): Promise<void> {
  const work = join(dir, `knobs-${process.pid}`);
  await mkdir(work, { recursive: true });
  const loops: LoopDevice[] = [];
  try {
    const images = {
      data: await buildImage(join(dir, 'images'), {
        name: 'data',
        virtualGiB: 2,
        dataGiB: 1,
        compressed: false,
      }),
      compressed: await buildImage(join(dir, 'images'), {
        name: 'text',
        virtualGiB: 2,
        dataGiB: 1,
        compressed: true,
      }),
    };
    const cases: { name: string; image: BenchImage; target: 'file' | 'loop'; variants: string[] }[] = [
      { name: 'file, 1 GiB data', image: images.data, target: 'file', variants: Object.keys(VARIANTS) },
      { name: 'loop, 1 GiB data', image: images.data, target: 'loop', variants: Object.keys(VARIANTS) },
      {
        name: 'loop, compressed qcow2',
        image: images.compressed,
        target: 'loop',
        variants: ['default (+sync)', '-t none -W', '-t none -W -m 16'],
      },
    ];
    const out: Record<string, Record<string, { median: number; runs: number[] }>> = {};
    for (const c of cases) {
      const runs: Record<string, number[]> = Object.fromEntries(c.variants.map((v) => [v, []]));
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < c.variants.length; i++) {
          const name = c.variants[(i + r) % c.variants.length];
          if (c.target === 'file') {
            const target = join(work, 'target.raw');
            await rm(target, { force: true });
            await sh('touch', [target]);
            await truncate(target, c.image.virtualBytes);
            runs[name].push(await timed(() => convert(c.image, target, VARIANTS[name])));
            await rm(target, { force: true });
          } else {
            const loop = await LoopDevice.create(join(work, 'loop.img'), c.image.virtualBytes);
            loops.push(loop);
            runs[name].push(await timed(() => convert(c.image, loop.device, VARIANTS[name])));
            await loop.destroy();
            loops.pop();
          }
        }
      }
      out[c.name] = Object.fromEntries(
        Object.entries(runs).map(([k, v]) => [k, { median: round(median(v)), runs: v.map((x) => round(x)) }]),
      );
      process.stderr.write(`[knobs] ${c.name} done\n`);
    }
    await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench', 'results', 'knobs.json'), `${JSON.stringify(out, null, 2)}\n`);
    for (const [name, variants] of Object.entries(out)) {
      const base = variants['default (+sync)'].median;
      process.stdout.write(`\n${name} (seconds, median of ${rounds}; ratio to default+sync)\n`);
      for (const [variant, { median: m, runs }] of Object.entries(variants)) {
        process.stdout.write(
          `  ${variant.padEnd(34)} ${m.toFixed(2).padStart(6)}  ${(m / base).toFixed(2)}  [${runs.join(', ')}]\n`,
        );
      }
    }
  } finally {
    for (const loop of loops) await loop.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`knobs could not measure: ${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
});
