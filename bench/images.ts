import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { sh } from './exec';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

export interface BenchImage {
  name: string;
  path: string;
  format: 'qcow2';
  virtualBytes: number;
  /** Bytes of data the image holds (qemu-img map: data, not zero): what a volume must receive. */
  dataBytes: number;
}

export interface ImageSpec {
  name: string;
  virtualGiB: number;
  dataGiB: number;
  /** Compressed qcow2 clusters (-c) holding compressible data, instead of incompressible data. */
  compressed: boolean;
}

/** 16 MiB data chunks spread evenly through the virtual size; zeros between them. */
const CHUNK = 16 * MIB;

/**
 * Builds an image once per machine (kept under `dir`, keyed by its spec): a sparse raw file with
 * data chunks written at even intervals, converted to qcow2 by qemu-img (which leaves the zeros out).
 */
export async function buildImage(dir: string, spec: ImageSpec): Promise<BenchImage> {
  mkdirSync(dir, { recursive: true });
  const path = join(
    dir,
    `${spec.name}-${spec.virtualGiB}g-${spec.dataGiB}g${spec.compressed ? '-c' : ''}.qcow2`,
  );
  if (!existsSync(path)) {
    const raw = `${path}.raw.partial`;
    const partial = `${path}.partial`;
    writeSpreadRaw(raw, spec);
    const args = ['convert', '-f', 'raw', '-O', 'qcow2', ...(spec.compressed ? ['-c'] : []), raw, partial];
    await sh('qemu-img', args);
    rmSync(raw);
    renameSync(partial, path);
  }
  return {
    name: spec.name,
    path,
    format: 'qcow2',
    virtualBytes: spec.virtualGiB * GIB,
    dataBytes: await allocatedBytes(path, 'qcow2'),
  };
}

function writeSpreadRaw(path: string, spec: ImageSpec): void {
  const virtual = spec.virtualGiB * GIB;
  const chunks = Math.round((spec.dataGiB * GIB) / CHUNK);
  const stride = Math.floor(virtual / chunks / MIB) * MIB;
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, virtual);
    for (let i = 0; i < chunks; i++) {
      const random = randomBytes(CHUNK);
      // Compressible variant: random hex digits (4 bits of entropy per byte), about 2:1 in zlib.
      const data = spec.compressed ? Buffer.from(random.toString('hex').slice(0, CHUNK), 'latin1') : random;
      writeSync(fd, data, 0, CHUNK, i * stride);
    }
  } finally {
    closeSync(fd);
  }
}

/** Guest-visible bytes that hold data (not holes, not zero clusters), per `qemu-img map`. */
export async function allocatedBytes(path: string, format: string): Promise<number> {
  const { stdout } = await sh('qemu-img', ['map', '--output=json', '-f', format, path]);
  const extents = JSON.parse(stdout) as { length: number; data: boolean; zero: boolean }[];
  return extents.filter((e) => e.data && !e.zero).reduce((sum, e) => sum + e.length, 0);
}
