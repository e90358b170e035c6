import { randomUUID } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * Where the cache keeps its files. CACHE_DIR/sha256/<hex> holds each image exactly as published;
 * next to it `<hex>.unpacked` (a gz/xz/zst/bz2 image, unpacked) and `<hex>.expanded` (a qcow2 with
 * compressed clusters, rewritten without compression). Everything partial is written in
 * CACHE_DIR/tmp (same filesystem, so a rename puts it in place) and removed at start-up, except
 * downloads a crash interrupted (resumable-partials.ts).
 */
export class CacheLayout {
  readonly storeDir: string;
  readonly tmpDir: string;

  constructor(cacheDir: string) {
    const root = resolve(cacheDir);
    this.storeDir = join(root, 'sha256');
    this.tmpDir = join(root, 'tmp');
  }

  /** The image with this digest, as published. */
  entry(sha256: string): string {
    return join(this.storeDir, sha256);
  }

  /** The expanded copy of a qcow2 with compressed clusters. */
  expanded(sha256: string): string {
    return `${this.entry(sha256)}.expanded`;
  }

  /** The unpacked form of a compressed image, beside it (in the store, or in tmp for a used-once image). */
  unpackedOf(imagePath: string): string {
    return `${imagePath}.unpacked`;
  }

  /** A download in progress (its digest is not known yet). */
  partialDownload(): string {
    return join(this.tmpDir, `${randomUUID()}.part`);
  }

  /** A verified image too big to keep: read by the jobs that wanted it, then removed. */
  usedOnce(sha256: string): string {
    return join(this.tmpDir, `${sha256}.${randomUUID()}.once`);
  }

  unpacking(sha256: string): string {
    return join(this.tmpDir, `${sha256}.${randomUUID()}.unpacking`);
  }

  expanding(sha256: string): string {
    return join(this.tmpDir, `${sha256}.${randomUUID()}.expanding`);
  }
}

/** Whether the path exists (a file removed behind the cache's back reads as absent). */
export function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
