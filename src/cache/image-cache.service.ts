import { randomUUID } from 'node:crypto';
import { access, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { concat, defer, finalize, from, map, mergeMap, Observable, of, ReplaySubject, share } from 'rxjs';
import { ChecksumMismatchError, DomainError, SourceError } from '../common/errors';
import type { JobScope } from '../common/job-scope';
import { Settings } from '../config/settings';
import { fsyncPath } from '../common/fsync';
import { preparePrivateDir } from '../common/private-dir';
import { Decompressor, Wrapper } from '../convert/decompressor';
import { detectFormat, readImageEnds } from '../convert/image-format';
import { QemuImg } from '../convert/qemu-img';
import { IMAGE_SOURCES, ImageSource } from '../storage/image-source';
import { CacheEntry, CacheRepository } from './cache.repository';
import { download, retryDelay } from './downloader';
import { chooseEvictions } from './eviction';
import { FetchEvent, ImageRequest, ImageStore, LocalImage } from './image-store';

export class CacheEntryNotFoundError extends DomainError {
  readonly code = 'cache_entry_not_found';
  readonly status = 404;
  constructor(sha256: string) {
    super(`no cached image with sha256 ${sha256}`);
  }
}

export class CacheEntryInUseError extends DomainError {
  readonly code = 'cache_entry_in_use';
  readonly status = 409;
  constructor(sha256: string, users: number) {
    super(`cached image ${sha256} is being read by ${users} running job(s); delete it after they finish`);
  }
}

/** What a finished download left: a file in the store, or (too big to keep) a file used once. */
interface Stored {
  path: string;
  sha256: string;
  size: number;
  cached: boolean;
}

type DownloadEvent =
  | { kind: 'progress'; bytes: number; total?: number }
  | { kind: 'retry'; retry: number; error: string; resumeAt: number }
  | { kind: 'stored'; stored: Stored; seconds: number };

/**
 * The content-addressed image cache: CACHE_DIR/sha256/<hex> holds each image exactly as
 * published, downloads land in CACHE_DIR/tmp (same filesystem) and are renamed into place only
 * after they are verified. One download per image however many jobs want it; least
 * recently used images are evicted beyond CACHE_MAX_BYTES / CACHE_MAX_ENTRIES, never one in use.
 * Next to an image: `<hex>.unpacked` (a gz/xz/zst/bz2 image, unpacked) and `<hex>.expanded` (a
 * qcow2 with compressed clusters, rewritten without compression; counted against CACHE_MAX_BYTES).
 */
@Injectable()
export class ImageCache implements ImageStore, OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(ImageCache.name);
  private readonly storeDir: string;
  readonly tmpDir: string;
  private readonly inflight = new Map<string, Observable<DownloadEvent>>();
  /** Readers per file path (cached or used-once). */
  private readonly readers = new Map<string, number>();
  private readonly cleanups = new Set<Promise<unknown>>();
  private readonly unpacking = new Map<string, Promise<string>>();
  /** New store files whose data is not yet fsynced, hence not yet in the index (by sha256). */
  private readonly notDurable = new Set<string>();
  /** Running fsync-then-index steps, by sha256. */
  private readonly durability = new Map<string, Promise<void>>();
  /** Expanded copies on disk (`<hex>.expanded`): their bytes, by sha256. */
  private readonly expandedBytes = new Map<string, number>();
  /** Inspected images with compressed qcow2 clusters: what to expand once no job reads it, by sha256. */
  private readonly expandWanted = new Map<string, { source: string; estimatedBytes: number }>();
  /** Expansions running in the background, by sha256. */
  private readonly expanding = new Map<string, { abort: AbortController; done: Promise<boolean> }>();
  /** Shutting down: no new expansion starts. */
  private closing = false;
  hits = 0;
  misses = 0;
  evictions = 0;
  /** Bytes received from image sources (metrics). */
  bytesDownloaded = 0;

  constructor(
    private readonly settings: Settings,
    private readonly repository: CacheRepository,
    @Inject(IMAGE_SOURCES) private readonly sources: ImageSource[],
    private readonly decompressor: Decompressor,
    private readonly qemuImg: QemuImg,
  ) {
    const root = resolve(settings.cacheDir);
    this.storeDir = join(root, 'sha256');
    this.tmpDir = join(root, 'tmp');
  }

  /**
   * Start-up: partial downloads and partial unpacked/expanded copies (all in tmp/) are removed,
   * the index and the files are made to agree.
   */
  async onModuleInit(): Promise<void> {
    preparePrivateDir(dirname(this.storeDir), 'CACHE_DIR', true);
    preparePrivateDir(this.storeDir, 'the cache store');
    preparePrivateDir(this.tmpDir, 'the cache tmp directory');
    const partial = await readdir(this.tmpDir);
    await Promise.all(partial.map((name) => rm(join(this.tmpDir, name), { force: true, recursive: true })));
    if (partial.length > 0) {
      this.logger.warn({
        files: partial,
        msg: `removed ${partial.length} partial download(s) or cache copies left by an earlier run`,
      });
    }
    const files = new Set(await readdir(this.storeDir));
    for (const entry of this.repository.all()) {
      if (files.delete(entry.sha256)) {
        files.delete(`${entry.sha256}.unpacked`);
        if (files.delete(`${entry.sha256}.expanded`)) {
          this.expandedBytes.set(entry.sha256, (await stat(this.expandedPathOf(entry.sha256))).size);
        }
        continue;
      }
      // Its unpacked or expanded copy, if any, is removed below with the other strays.
      this.repository.remove(entry.sha256);
      this.logger.warn({ sha256: entry.sha256, msg: 'cache index row had no file; removed the row' });
    }
    for (const stray of files) {
      await rm(join(this.storeDir, stray), { force: true, recursive: true });
      this.logger.warn({ file: stray, msg: 'cache file had no index row; removed the file' });
    }
    await this.evict();
  }

  obtain(request: ImageRequest, job: JobScope): Observable<FetchEvent> {
    return defer(async () => {
      // This image, downloaded moments ago, is indexed once it is durable: wait for that, then hit it.
      await this.durableNow(this.pendingFor(request));
      return this.lookup(request);
    }).pipe(mergeMap((hit) => (hit ? this.serveHit(hit, request, job) : this.serveMiss(request, job))));
  }

  /**
   * Makes every new store file durable and indexed. A file no job reads any more is fsynced now;
   * one still being read is fsynced when its last reader lets go (see unpin).
   */
  private async settled(): Promise<void> {
    await this.durableNow([...this.notDurable, ...this.durability.keys()]);
  }

  /** Makes these new store files durable and indexed now, and waits for that; others are left alone. */
  private async durableNow(sha256s: string[]): Promise<void> {
    for (const sha256 of sha256s) this.makeDurable(sha256);
    await Promise.allSettled(sha256s.map((sha256) => this.durability.get(sha256)));
  }

  /** New store files, not yet indexed, that the request would hit once they are (by sha256). */
  private pendingFor({ ref, expected }: ImageRequest): string[] {
    return [...this.pendingIndex.values()]
      .filter((row) =>
        expected
          ? row.sha256 === expected.sha256
          : ref.etag !== undefined && row.url === ref.url && row.etag === ref.etag && row.size === ref.size,
      )
      .map((row) => row.sha256);
  }

  /**
   * Shutdown, before the database closes: expansions stop (their partial files are removed), and
   * the index must know the files jobs downloaded.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    for (const { abort } of this.expanding.values()) abort.abort();
    await Promise.allSettled([...this.expanding.values()].map(({ done }) => done));
    await this.settled();
  }

  /**
   * The unpacked form of a compressed image (gz, xz, zst, bz2), made once and kept next to its
   * digest (`<hex>.unpacked`, sparse) so later provisions skip the decompression. Two jobs that
   * need it at once share one decompression.
   */
  async unpacked(
    image: LocalImage,
    wrapper: Wrapper,
    maxBytes: number,
    job: JobScope,
    signal: AbortSignal,
  ): Promise<string> {
    const target = `${image.path}.unpacked`;
    if (
      await access(target).then(
        () => true,
        () => false,
      )
    )
      return target;
    let running = this.unpacking.get(target);
    if (!running) {
      const partial = join(this.tmpDir, `${image.sha256}.${randomUUID()}.unpacking`);
      running = this.decompressor
        .unpack(wrapper, image.path, partial, maxBytes, signal, (exited) => job.track(exited))
        .then(async (bytes) => {
          await rename(partial, target);
          await fsyncPath(dirname(target));
          this.logger.log({
            sha256: image.sha256,
            wrapper,
            bytes,
            msg: 'unpacked compressed image into the cache',
          });
          return target;
        })
        .catch(async (error) => {
          await rm(partial, { force: true });
          throw error;
        })
        .finally(() => this.unpacking.delete(target));
      this.unpacking.set(target, running);
    }
    return running;
  }

  /**
   * The expanded copy of a qcow2 with compressed clusters, made in the background once no job
   * reads the image (so it never slows the job that downloaded it, nor races its reads): a plain
   * qcow2 holding the same clusters uncompressed, which later jobs read instead (decompression
   * bounds qemu-img convert on a compressed qcow2). Written in tmp/, fsynced, renamed to
   * `<hex>.expanded`; on failure (disk full, a kill) nothing is left in the store.
   */
  expandLater(image: LocalImage, readPath: string, estimatedBytes: number): void {
    // A used-once image (too big to keep) gets no copy; nor one that has a copy already.
    if (image.path !== this.pathOf(image.sha256)) return;
    if (this.expandedBytes.has(image.sha256) || this.expanding.has(image.sha256)) return;
    this.expandWanted.set(image.sha256, { source: readPath, estimatedBytes });
  }

  private expandedPathOf(sha256: string): string {
    return `${this.pathOf(sha256)}.expanded`;
  }

  /** Starts the expansion asked for, once the image is durable and indexed. */
  private expandWhenDurable(sha256: string): void {
    const wanted = this.expandWanted.get(sha256);
    if (wanted === undefined) return;
    this.expandWanted.delete(sha256);
    const durable = this.durability.get(sha256) ?? Promise.resolve();
    void durable
      .then(() => this.expand(sha256, wanted.source, wanted.estimatedBytes))
      .catch((error: Error) => {
        this.logger.warn({ sha256, error: error.message, msg: 'could not start the expanded copy' });
      });
  }

  private async expand(sha256: string, source: string, estimatedBytes: number): Promise<void> {
    const entry = this.repository.get(sha256);
    // Not kept (it could not be made durable), or deleted meanwhile.
    if (!entry || this.closing || this.expandedBytes.has(sha256) || this.expanding.has(sha256)) return;
    const skip = await this.roomForExpanded(entry, estimatedBytes);
    if (skip) {
      this.logger.log({ sha256, size: entry.size, estimated_bytes: estimatedBytes, msg: skip });
      return;
    }
    if (this.closing || this.expanding.has(sha256) || !this.repository.get(sha256)) return;
    const abort = new AbortController();
    const done = this.writeExpanded(entry, source, abort.signal).finally(() => this.expanding.delete(sha256));
    this.expanding.set(sha256, { abort, done });
    // Evicting after `done`: an eviction of this very entry waits for `done` (removeFiles).
    void done
      .then((made) => (made ? this.evict() : undefined))
      .catch((error: Error) => {
        this.logger.warn({ sha256, error: error.message, msg: 'cache eviction failed' });
      });
  }

  /**
   * Why no expanded copy is made, or undefined when there is room: it must fit CACHE_MAX_BYTES
   * together with its image, and leave at least as much free space on the cache filesystem as it
   * takes, so a copy never takes the last of the disk from downloads.
   */
  private async roomForExpanded(entry: CacheEntry, estimatedBytes: number): Promise<string | undefined> {
    if (entry.size + estimatedBytes > this.settings.cacheMaxBytes) {
      return 'no expanded copy of this compressed qcow2: with its image it would exceed CACHE_MAX_BYTES; jobs read the compressed image';
    }
    const fs = await statfs(this.storeDir);
    if (fs.bavail * fs.bsize < 2 * estimatedBytes) {
      return 'no expanded copy of this compressed qcow2: the cache filesystem has less than twice its size free; jobs read the compressed image';
    }
    return undefined;
  }

  /** True when the copy is in place. Never throws: the compressed image still serves every job. */
  private async writeExpanded(entry: CacheEntry, source: string, signal: AbortSignal): Promise<boolean> {
    const { sha256 } = entry;
    const partial = join(this.tmpDir, `${sha256}.${randomUUID()}.expanding`);
    const started = Date.now();
    try {
      await this.qemuImg.expand(source, partial, {
        signal,
        timeoutMs: this.settings.jobTimeout * 1000,
        // As much CPU time as a job may take, in an address space as small as inspection's.
        limits: { cpuSeconds: this.settings.jobTimeout, addressSpaceBytes: this.settings.inspectMemoryBytes },
      });
      await fsyncPath(partial);
      signal.throwIfAborted();
      const { size } = await stat(partial);
      if (entry.size + size > this.settings.cacheMaxBytes) {
        await rm(partial, { force: true });
        this.logger.warn({
          sha256,
          size: entry.size,
          expanded_bytes: size,
          cache_max_bytes: this.settings.cacheMaxBytes,
          msg: 'expanded copy of a compressed qcow2 would not fit CACHE_MAX_BYTES with its image: not kept; jobs read the compressed image',
        });
        return false;
      }
      await rename(partial, this.expandedPathOf(sha256));
      await fsyncPath(this.storeDir);
      this.expandedBytes.set(sha256, size);
      this.logger.log({
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
        this.logger.warn({
          sha256,
          error: (error as Error).message,
          msg: 'could not make the expanded copy of a compressed qcow2 (is CACHE_DIR full?); jobs read the compressed image, and the next one tries again',
        });
      }
      return false;
    }
  }

  /** Indexed entries, and downloads that will be indexed once durable (their jobs are still on). */
  list(): { entry: CacheEntry; readers: number; expandedBytes: number }[] {
    const waiting = [...this.pendingIndex.values()].map((row): CacheEntry => ({
      sha256: row.sha256,
      size: row.size,
      format: row.format,
      createdAt: row.storedAt,
      lastUsedAt: row.storedAt,
      useCount: 1,
      sources: row.etag === undefined ? [] : [{ url: row.url, etag: row.etag }],
    }));
    return [...this.repository.all(), ...waiting].map((entry) => ({
      entry,
      readers: this.readers.get(this.pathOf(entry.sha256)) ?? 0,
      expandedBytes: this.expandedBytes.get(entry.sha256) ?? 0,
    }));
  }

  get limits() {
    return { maxBytes: this.settings.cacheMaxBytes, maxEntries: this.settings.cacheMaxEntries };
  }

  async remove(sha256: string): Promise<void> {
    await this.durableNow([sha256]);
    const entry = this.repository.get(sha256);
    if (!entry) throw new CacheEntryNotFoundError(sha256);
    const readers = this.readers.get(this.pathOf(sha256)) ?? 0;
    if (readers > 0) throw new CacheEntryInUseError(sha256, readers);
    this.repository.remove(sha256);
    await this.removeFiles(sha256);
    this.logger.log({ sha256, size: entry.size, msg: 'cache entry deleted on request' });
  }

  private pathOf(sha256: string): string {
    return join(this.storeDir, sha256);
  }

  /** An entry's file and its unpacked and expanded forms, if any (a running expansion is stopped first). */
  private async removeFiles(sha256: string): Promise<void> {
    this.expandWanted.delete(sha256);
    const expanding = this.expanding.get(sha256);
    if (expanding) {
      expanding.abort.abort();
      await expanding.done;
    }
    await rm(this.pathOf(sha256), { force: true });
    await rm(`${this.pathOf(sha256)}.unpacked`, { force: true });
    await rm(this.expandedPathOf(sha256), { force: true });
    this.expandedBytes.delete(sha256);
  }

  /** The expanded copy, when there is one on disk. */
  private async expandedCopy(sha256: string): Promise<string | undefined> {
    if (!this.expandedBytes.has(sha256)) return undefined;
    const path = this.expandedPathOf(sha256);
    if (
      await access(path).then(
        () => true,
        () => false,
      )
    )
      return path;
    // Removed behind our back: jobs read the compressed image, and the next one makes it again.
    this.expandedBytes.delete(sha256);
    return undefined;
  }

  private lookup({ ref, expected }: ImageRequest): CacheEntry | undefined {
    if (expected) return this.repository.get(expected.sha256);
    if (ref.etag && ref.size !== undefined) return this.repository.bySource(ref.url, ref.etag, ref.size);
    return undefined;
  }

  private serveHit(entry: CacheEntry, request: ImageRequest, job: JobScope): Observable<FetchEvent> {
    const path = this.pathOf(entry.sha256);
    return from(
      access(path).then(
        () => true,
        () => false,
      ),
    ).pipe(
      mergeMap((present) => {
        if (!present) {
          // Removed behind our back: forget it and download again.
          this.repository.remove(entry.sha256);
          this.logger.warn({ sha256: entry.sha256, msg: 'cached file was missing; downloading again' });
          return this.serveMiss(request, job);
        }
        this.hits++;
        return from(this.expandedCopy(entry.sha256)).pipe(
          mergeMap((expandedPath) => {
            const stored = { path, sha256: entry.sha256, size: entry.size, cached: true };
            const image = this.acquire(stored, true, expandedPath);
            return from<FetchEvent[]>([
              { kind: 'checked', cacheHit: true },
              { kind: 'ready', image },
            ]);
          }),
        );
      }),
    );
  }

  private serveMiss(request: ImageRequest, job: JobScope): Observable<FetchEvent> {
    this.misses++;
    const shared = this.sharedDownload(request);
    return concat(
      of<FetchEvent>({ kind: 'checked', cacheHit: false }),
      new Observable<FetchEvent>((subscriber) => {
        const subscription = shared
          .pipe(
            map((event): FetchEvent =>
              event.kind === 'stored'
                ? {
                    kind: 'ready',
                    image: this.acquire(event.stored, false),
                    download: { bytes: event.stored.size, seconds: event.seconds },
                  }
                : event,
            ),
          )
          .subscribe(subscriber);
        return () => {
          subscription.unsubscribe();
          // If this was the last job that wanted the download, its partial file is being removed.
          job.track(Promise.allSettled([...this.cleanups]));
        };
      }),
    );
  }

  /** Single flight: every job that wants the same image shares one transfer and sees its progress. */
  private sharedDownload(request: ImageRequest): Observable<DownloadEvent> {
    const { ref, expected } = request;
    const key = expected
      ? `sha256:${expected.sha256}`
      : `source:${ref.url}|${ref.etag ?? ''}|${ref.size ?? ''}|${ref.lastModified ?? ''}`;
    let shared = this.inflight.get(key);
    if (!shared) {
      shared = this.downloadOnce(request).pipe(
        finalize(() => this.inflight.delete(key)),
        share({
          connector: () => new ReplaySubject<DownloadEvent>(1),
          resetOnError: true,
          resetOnComplete: true,
          resetOnRefCountZero: true,
        }),
      );
      this.inflight.set(key, shared);
    }
    return shared;
  }

  private downloadOnce({ ref, expected }: ImageRequest): Observable<DownloadEvent> {
    return new Observable<DownloadEvent>((subscriber) => {
      const abort = new AbortController();
      const partial = join(this.tmpDir, `${randomUUID()}.part`);
      const source = this.sources.find((s) => s.handles(new URL(ref.url)));
      let settled = false;
      const started = Date.now();
      const work = (async () => {
        if (!source) throw new SourceError(`no image source serves ${ref.url}`);
        const result = await download({
          source,
          ref,
          path: partial,
          attempts: this.settings.minioRetryAttempts,
          delayBeforeRetry: (retry) => retryDelay(this.settings.minioRetryBackoffMs, retry),
          signal: abort.signal,
          onBytes: (bytes, total) => subscriber.next({ kind: 'progress', bytes, total }),
          onReceived: (bytes) => (this.bytesDownloaded += bytes),
          // Told to every job sharing this download; each logs it with its own fields.
          onRetry: (retry, error, resumeAt) =>
            subscriber.next({ kind: 'retry', retry, error: error.message, resumeAt }),
        });
        if (expected && result.sha256 !== expected.sha256) {
          throw new ChecksumMismatchError(ref.url, expected.sha256, result.sha256, expected.origin);
        }
        return this.place(partial, result.sha256, result.bytes, ref.url, result.etag);
      })();
      work.then(
        (stored) => {
          settled = true;
          subscriber.next({ kind: 'stored', stored, seconds: (Date.now() - started) / 1000 });
          this.unpin(stored);
          subscriber.complete();
        },
        async (error) => {
          settled = true;
          await rm(partial, { force: true });
          subscriber.error(error);
        },
      );
      return () => {
        if (settled) return;
        abort.abort();
        const cleanup = work.catch(() => undefined).finally(() => rm(partial, { force: true }));
        this.cleanups.add(cleanup);
        void cleanup.finally(() => this.cleanups.delete(cleanup));
      };
    });
  }

  /**
   * Moves a verified download into the store (or keeps it aside, used once, when it is larger
   * than the cache may hold) and evicts what no longer fits. The new file is pinned until the
   * jobs waiting for it have taken it.
   */
  private async place(
    partial: string,
    sha256: string,
    size: number,
    url: string,
    etag?: string,
  ): Promise<Stored> {
    const { header, footer } = await readImageEnds(partial);
    const format = detectFormat(header, footer);
    if (size > this.settings.cacheMaxBytes || this.settings.cacheMaxEntries === 0) {
      const aside = join(this.tmpDir, `${sha256}.${randomUUID()}.once`);
      await rename(partial, aside);
      this.logger.warn({
        sha256,
        size,
        cache_max_bytes: this.settings.cacheMaxBytes,
        msg: 'image is larger than CACHE_MAX_BYTES: used once and not cached',
      });
      const stored = { path: aside, sha256, size, cached: false };
      this.pin(stored);
      return stored;
    }
    const path = this.pathOf(sha256);
    // Verified bytes, still only in the page cache: the jobs waiting for them read them from there.
    // The fsync and the index row come after those jobs (makeDurable): their volume writes then
    // get the disk to themselves. A crash before it leaves a file without a row, which start-up
    // removes; a row never names a file that is not durable.
    await rename(partial, path);
    this.pendingIndex.set(sha256, { sha256, size, format, url, etag, storedAt: new Date().toISOString() });
    this.notDurable.add(sha256);
    const stored = { path, sha256, size, cached: true };
    this.pin(stored);
    return stored;
  }

  private readonly pendingIndex = new Map<
    string,
    Parameters<CacheRepository['add']>[0] & { storedAt: string }
  >();

  private makeDurable(sha256: string): void {
    if (!this.notDurable.delete(sha256)) return;
    const started = Date.now();
    const step = (async () => {
      const row = this.pendingIndex.get(sha256)!;
      try {
        await fsyncPath(this.pathOf(sha256));
        await fsyncPath(this.storeDir);
        this.repository.add(row, row.storedAt);
        this.logger.debug({ sha256, seconds: (Date.now() - started) / 1000, msg: 'cache file made durable' });
        await this.evict();
      } catch (error) {
        // Not durable, not indexed: the file is of no use to later jobs.
        this.logger.warn({
          sha256,
          error: (error as Error).message,
          msg: 'could not keep the download in the cache',
        });
        await rm(this.pathOf(sha256), { force: true });
      } finally {
        this.pendingIndex.delete(sha256);
        this.durability.delete(sha256);
      }
    })();
    this.durability.set(sha256, step);
  }

  private pin(stored: Stored): void {
    this.readers.set(stored.path, (this.readers.get(stored.path) ?? 0) + 1);
  }

  private unpin(stored: Stored): void {
    const left = (this.readers.get(stored.path) ?? 1) - 1;
    if (left > 0) {
      this.readers.set(stored.path, left);
      return;
    }
    this.readers.delete(stored.path);
    if (stored.cached) {
      this.makeDurable(stored.sha256);
      this.expandWhenDurable(stored.sha256);
    }
    if (!stored.cached) {
      void rm(stored.path, { force: true });
      void rm(`${stored.path}.unpacked`, { force: true });
    }
  }

  private acquire(stored: Stored, cacheHit: boolean, expandedPath?: string): LocalImage {
    this.pin(stored);
    if (stored.cached && !this.notDurable.has(stored.sha256))
      this.repository.touch(stored.sha256, new Date().toISOString());
    let released = false;
    return {
      path: stored.path,
      sha256: stored.sha256,
      sizeBytes: stored.size,
      cacheHit,
      expandedPath,
      release: async () => {
        if (released) return;
        released = true;
        this.unpin(stored);
      },
    };
  }

  private async evict(): Promise<void> {
    const entries = this.repository.all();
    // An entry's expanded copy counts with it: both go together.
    const victims = chooseEvictions(
      entries.map((e) => ({
        sha256: e.sha256,
        size: e.size + (this.expandedBytes.get(e.sha256) ?? 0),
        lastUsedAt: e.lastUsedAt,
      })),
      this.limits,
      (sha256) => (this.readers.get(this.pathOf(sha256)) ?? 0) > 0,
    );
    for (const victim of victims) {
      this.repository.remove(victim.sha256);
      await this.removeFiles(victim.sha256);
      this.evictions++;
      this.logger.log({
        sha256: victim.sha256,
        size: victim.size,
        last_used_at: victim.lastUsedAt,
        msg: 'cache eviction',
      });
    }
  }
}
