import { messageOf } from '../common/errors';
import { rename, rm, stat, statfs } from 'node:fs/promises';
import type { Logger } from '@nestjs/common';
import { fsyncPath } from '../common/fsync';
import { Settings } from '../config/settings';
import { QemuImg } from '../convert/qemu-img';
import type { CacheEntry } from './cache.repository';
import { CacheLayout, exists } from './cache-layout';

/**
 * Why no expanded copy is made, or undefined when there is room: it must fit CACHE_MAX_BYTES
 * together with its image, and leave at least as much free space on the cache filesystem as it
 * takes, so a copy never takes the last of the disk from downloads.
 */
export function whyNoExpandedCopy(room: {
  imageBytes: number;
  estimatedBytes: number;
  maxBytes: number;
  freeBytes: number;
}): string | undefined {
  if (room.imageBytes + room.estimatedBytes > room.maxBytes) {
    return 'no expanded copy of this compressed qcow2: with its image it would exceed CACHE_MAX_BYTES; jobs read the compressed image';
  }
  if (room.freeBytes < 2 * room.estimatedBytes) {
    return 'no expanded copy of this compressed qcow2: the cache filesystem has less than twice its size free; jobs read the compressed image';
  }
  return undefined;
}

export interface ExpandedCopiesDeps {
  settings: Settings;
  qemuImg: QemuImg;
  layout: CacheLayout;
  logger: Logger;
  /** The indexed entry, if the image is (still) kept. */
  entryOf: (sha256: string) => CacheEntry | undefined;
  /** A copy was put in place (the cache evicts what no longer fits). */
  onMade: (sha256: string) => Promise<void>;
}

/**
 * The expanded copy of a qcow2 with compressed clusters, made in the background once no job
 * reads the image (so it never slows the job that downloaded it, nor races its reads): a plain
 * qcow2 holding the same clusters uncompressed, which later jobs read instead (decompression
 * bounds qemu-img convert on a compressed qcow2). Written in tmp/, fsynced, renamed to
 * `<hex>.expanded`; on failure (disk full, a kill) nothing is left in the store. Its bytes count
 * against CACHE_MAX_BYTES with its image.
 */
export class ExpandedCopies {
  /** Expanded copies on disk (`<hex>.expanded`): their bytes, by sha256. */
  private readonly bytes = new Map<string, number>();
  /** Inspected images with compressed qcow2 clusters: what to expand once no job reads it, by sha256. */
  private readonly wanted = new Map<string, { source: string; estimatedBytes: number }>();
  /** Expansions running in the background, by sha256. */
  private readonly running = new Map<string, { abort: AbortController; done: Promise<boolean> }>();
  /** Shutting down: no new expansion starts. */
  private closing = false;

  constructor(private readonly deps: ExpandedCopiesDeps) {}

  /** A copy found on disk at start-up. */
  async found(sha256: string): Promise<void> {
    this.bytes.set(sha256, (await stat(this.deps.layout.expanded(sha256))).size);
  }

  bytesOf(sha256: string): number {
    return this.bytes.get(sha256) ?? 0;
  }

  /** Asks for a copy of `source` (the image or its unpacked form), made once no job reads the image. */
  want(sha256: string, source: string, estimatedBytes: number): void {
    if (this.bytes.has(sha256) || this.running.has(sha256)) return;
    this.wanted.set(sha256, { source, estimatedBytes });
  }

  /** Starts the expansion asked for (if any), once the image is durable and indexed. */
  startAfter(sha256: string, durable: Promise<void>): void {
    const wanted = this.wanted.get(sha256);
    if (wanted === undefined) return;
    this.wanted.delete(sha256);
    void durable
      .then(() => this.expand(sha256, wanted.source, wanted.estimatedBytes))
      .catch((error: Error) => {
        this.deps.logger.warn({ sha256, error: error.message, msg: 'could not start the expanded copy' });
      });
  }

  /** The expanded copy, when there is one on disk. */
  async pathOf(sha256: string): Promise<string | undefined> {
    if (!this.bytes.has(sha256)) return undefined;
    const path = this.deps.layout.expanded(sha256);
    if (await exists(path)) return path;
    // Removed behind our back: jobs read the compressed image, and the next one makes it again.
    this.bytes.delete(sha256);
    return undefined;
  }

  /** Forgets any wish for a copy and stops a running expansion (its partial file is removed). */
  async stop(sha256: string): Promise<void> {
    this.wanted.delete(sha256);
    const running = this.running.get(sha256);
    if (running) {
      running.abort.abort();
      await running.done;
    }
  }

  /** Removes the copy from disk (after `stop`). */
  async remove(sha256: string): Promise<void> {
    await rm(this.deps.layout.expanded(sha256), { force: true });
    this.bytes.delete(sha256);
  }

  /** Shutdown: expansions stop (their partial files are removed) and no new one starts. */
  async close(): Promise<void> {
    this.closing = true;
    for (const { abort } of this.running.values()) abort.abort();
    await Promise.allSettled([...this.running.values()].map(({ done }) => done));
  }

  private async expand(sha256: string, source: string, estimatedBytes: number): Promise<void> {
    const entry = this.deps.entryOf(sha256);
    // Not kept (it could not be made durable), or deleted meanwhile.
    if (!entry || this.closing || this.bytes.has(sha256) || this.running.has(sha256)) return;
    const { bavail, bsize } = await statfs(this.deps.layout.storeDir);
    const skip = whyNoExpandedCopy({
      imageBytes: entry.size,
      estimatedBytes,
      maxBytes: this.deps.settings.cache.maxBytes,
      freeBytes: bavail * bsize,
    });
    if (skip) {
      this.deps.logger.log({ sha256, size: entry.size, estimated_bytes: estimatedBytes, msg: skip });
      return;
    }
    if (this.closing || this.running.has(sha256) || !this.deps.entryOf(sha256)) return;
    const abort = new AbortController();
    const done = this.write(entry, source, abort.signal).finally(() => this.running.delete(sha256));
    this.running.set(sha256, { abort, done });
    // Evicting after `done`: an eviction of this very entry waits for `done` (stop).
    void done
      .then((made) => (made ? this.deps.onMade(sha256) : undefined))
      .catch((error: Error) => {
        this.deps.logger.warn({ sha256, error: error.message, msg: 'cache eviction failed' });
      });
  }

  /** True when the copy is in place. Never throws: the compressed image still serves every job. */
  private async write(entry: CacheEntry, source: string, signal: AbortSignal): Promise<boolean> {
    const { settings, layout, logger } = this.deps;
    const { sha256 } = entry;
    const partial = layout.expanding(sha256);
    const started = Date.now();
    try {
      await this.deps.qemuImg.expand(source, partial, {
        signal,
        timeoutMs: settings.jobs.timeoutSeconds * 1000,
        // As much CPU time as a job may take, and no address-space cap: the image has passed
        // inspection (a job's own convert runs uncapped too). Under inspection's 1 GiB cap,
        // convert's I/O threads (each with its stack and malloc arena) could not be created when
        // the disk was busy: qemu-img aborted ("qemu_thread_create: Resource temporarily
        // unavailable"), seen in a loaded test run, and no copy was made.
        limits: { cpuSeconds: settings.jobs.timeoutSeconds },
      });
      await fsyncPath(partial);
      signal.throwIfAborted();
      const { size } = await stat(partial);
      if (entry.size + size > settings.cache.maxBytes) {
        await rm(partial, { force: true });
        logger.warn({
          sha256,
          size: entry.size,
          expanded_bytes: size,
          cache_max_bytes: settings.cache.maxBytes,
          msg: 'expanded copy of a compressed qcow2 would not fit CACHE_MAX_BYTES with its image: not kept; jobs read the compressed image',
        });
        return false;
      }
      await rename(partial, layout.expanded(sha256));
      await fsyncPath(layout.storeDir);
      this.bytes.set(sha256, size);
      logger.log({
        sha256,
        size: entry.size,
        expanded_bytes: size,
        seconds: (Date.now() - started) / 1000,
        msg: 'expanded compressed qcow2 into the cache',
      });
      return true;
    } catch (error) {
      await rm(partial, { force: true });
      if (!signal.aborted) {
        logger.warn({
          sha256,
          error: messageOf(error),
          msg: 'could not make the expanded copy of a compressed qcow2 (is CACHE_DIR full?); jobs read the compressed image, and the next one tries again',
        });
      }
      return false;
    }
  }
}
