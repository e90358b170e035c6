import { rename, rm } from 'node:fs/promises';
import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { concat, defer, from, map, mergeMap, Observable, of } from 'rxjs';
import { CacheEntryInUseError, CacheEntryNotFoundError } from '../common/errors';
import type { JobScope } from '../common/job-scope';
import { Settings } from '../config/settings';
import { Decompressor } from '../convert/decompressor';
import { detectFormat, readImageEnds } from '../convert/image-format';
import { QemuImg } from '../convert/qemu-img';
import { IMAGE_SOURCES, ImageSource } from '../storage/image-source';
import { BASE_STORE, type BaseCatalog } from './base-store';
import { CacheCounters } from './cache-counters';
import { CacheLayout, exists } from './cache-layout';
import { CacheEntry, CacheRepository } from './cache.repository';
import type { Downloaded } from './downloader';
import { DurableIndex } from './durable-index';
import { chooseEvictions } from './eviction';
import { ExpandedCopies } from './expanded-copies';
import { FetchEvent, ImageRequest, ImageStore, LocalImage } from './image-store';
import { ReaderPins } from './reader-pins';
import { SharedDownloads, Stored } from './shared-downloads';
import { ResumablePartials } from './resumable-partials';
import { recoverStore } from './store-recovery';
import { UnpackedCopies } from './unpacked-copies';

/**
 * The content-addressed image cache (layout: cache-layout.ts). Downloads are verified before
 * they are renamed into the store. One download per image however many jobs want it; least
 * recently used images are evicted beyond CACHE_MAX_BYTES / CACHE_MAX_ENTRIES, never one in use.
 * This class coordinates the parts, each of which owns its state: the shared downloads, the
 * reader pins, the durable index, the expanded and unpacked copies.
 */
@Injectable()
export class ImageCache implements ImageStore, OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(ImageCache.name);
  private readonly layout: CacheLayout;
  readonly counters = new CacheCounters();
  private readonly pins = new ReaderPins<Stored>({
    lastReader: (stored) => this.lastReaderGone(stored),
    unused: (stored) => this.unused(stored),
  });
  private readonly downloads: SharedDownloads;
  private readonly index: DurableIndex;
  private readonly expanded: ExpandedCopies;
  private readonly unpackedCopies: UnpackedCopies;
  readonly partials: ResumablePartials;

  constructor(
    private readonly settings: Settings,
    private readonly repository: CacheRepository,
    @Inject(IMAGE_SOURCES) sources: ImageSource[],
    decompressor: Decompressor,
    qemuImg: QemuImg,
    @Inject(BASE_STORE) private readonly bases: BaseCatalog,
  ) {
    const layout = (this.layout = new CacheLayout(settings.cache.dir));
    const logger = this.logger;
    this.partials = new ResumablePartials(layout, settings.jobs.resumeInterrupted, logger);
    this.downloads = new SharedDownloads({
      settings,
      sources,
      partials: this.partials,
      place: (partial, downloaded, url) => this.place(partial, downloaded, url),
      onTaken: (stored) => this.pins.unpin(stored),
      onReceived: (bytes) => (this.counters.bytesDownloaded += bytes),
    });
    this.index = new DurableIndex({
      repository,
      logger,
      storeDir: layout.storeDir,
      pathOf: (sha256) => layout.entry(sha256),
      onDurable: () => this.evict(),
    });
    this.expanded = new ExpandedCopies({
      settings,
      qemuImg,
      layout,
      logger,
      entryOf: (sha256) => repository.get(sha256),
      onMade: () => this.evict(),
    });
    this.unpackedCopies = new UnpackedCopies(decompressor, layout, logger);
  }

  /** Where partial downloads and copies are written (the readiness check probes it). */
  get tmpDir(): string {
    return this.layout.tmpDir;
  }

  /** Start-up: the index and the files are made to agree (store-recovery.ts). */
  async onModuleInit(): Promise<void> {
    const { keep, restore } = this.partials;
    const expanded = await recoverStore(this.layout, this.repository, this.logger, keep, restore);
    for (const sha256 of expanded) await this.expanded.found(sha256);
    await this.evict();
    await this.bases.recover((sha256) => this.repository.get(sha256) !== undefined);
  }
  obtain(request: ImageRequest, job: JobScope): Observable<FetchEvent> {
    return defer(async () => {
      // This image, downloaded moments ago, is indexed once it is durable: wait for that, then hit it.
      await this.index.durableNow(this.index.pendingFor(request));
      return this.lookup(request);
    }).pipe(mergeMap((hit) => (hit ? this.serveHit(hit, request, job) : this.serveMiss(request, job))));
  }

  /**
   * Shutdown, before the database closes: expansions stop (their partial files are removed), and
   * the index must know the files jobs downloaded.
   */
  async beforeApplicationShutdown(): Promise<void> {
    // A base verification still running holds its image: it stops first and lets go of it.
    await this.bases.close();
    await this.expanded.close();
    await this.index.settled();
  }

  unpacked(...args: Parameters<ImageStore['unpacked']>): Promise<string> {
    return this.unpackedCopies.of(...args);
  }

  expandLater(image: LocalImage, readPath: string, estimatedBytes: number): void {
    // A used-once image (too big to keep) gets no copy.
    if (image.path !== this.layout.entry(image.sha256)) return;
    this.expanded.want(image.sha256, readPath, estimatedBytes);
  }

  /** Indexed entries, and downloads that will be indexed once durable (their jobs are still on). */
  list(): { entry: CacheEntry; readers: number; expandedBytes: number }[] {
    return [...this.repository.all(), ...this.index.waiting()].map((entry) => ({
      entry,
      readers: this.readersOf(entry.sha256),
      expandedBytes: this.expanded.bytesOf(entry.sha256),
    }));
  }

  get limits() {
    return { maxBytes: this.settings.cache.maxBytes, maxEntries: this.settings.cache.maxEntries };
  }

  async remove(sha256: string): Promise<void> {
    await this.index.durableNow([sha256]);
    const entry = this.repository.get(sha256);
    if (!entry) throw new CacheEntryNotFoundError(sha256);
    const readers = this.readersOf(sha256);
    if (readers > 0) throw new CacheEntryInUseError(sha256, readers);
    this.repository.remove(sha256);
    await this.removeFiles(sha256);
    this.logger.log({ sha256, size: entry.size, msg: 'cache entry deleted on request' });
  }

  private readersOf(sha256: string): number {
    return this.pins.count(this.layout.entry(sha256));
  }

  /** An entry's file, its unpacked and expanded forms and its golden bases (a running expansion is stopped first). */
  private async removeFiles(sha256: string): Promise<void> {
    await this.bases.removeImage(sha256);
    await this.expanded.stop(sha256);
    await rm(this.layout.entry(sha256), { force: true });
    await rm(this.layout.unpackedOf(this.layout.entry(sha256)), { force: true });
    await this.expanded.remove(sha256);
  }

  private lookup({ ref, expected }: ImageRequest): CacheEntry | undefined {
    if (expected) return this.repository.get(expected.sha256);
    if (ref.etag && ref.size !== undefined) return this.repository.bySource(ref.url, ref.etag, ref.size);
    return undefined;
  }

  private serveHit(entry: CacheEntry, request: ImageRequest, job: JobScope): Observable<FetchEvent> {
    const path = this.layout.entry(entry.sha256);
    return from(exists(path)).pipe(
      mergeMap((present) => {
        if (!present) {
          // Removed behind our back: forget it and download again.
          this.repository.remove(entry.sha256);
          this.logger.warn({ sha256: entry.sha256, msg: 'cached file was missing; downloading again' });
          return this.serveMiss(request, job);
        }
        this.counters.hits++;
        return from(this.expanded.pathOf(entry.sha256)).pipe(
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
    this.counters.misses++;
    const shared = this.downloads.of(request);
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
          job.track(this.downloads.cleanedUp());
        };
      }),
    );
  }

  /**
   * Moves a verified download into the store (or keeps it aside, used once, when it is larger
   * than the cache may hold). The new file is pinned until the jobs waiting for it have taken it;
   * eviction follows once it is durable.
   */
  private async place(
    partial: string,
    { sha256, bytes: size, etag }: Downloaded,
    url: string,
  ): Promise<Stored> {
    const { header, footer } = await readImageEnds(partial);
    const format = detectFormat(header, footer);
    if (size > this.settings.cache.maxBytes || this.settings.cache.maxEntries === 0) {
      const aside = this.layout.usedOnce(sha256);
      await rename(partial, aside);
      this.logger.warn({
        sha256,
        size,
        cache_max_bytes: this.settings.cache.maxBytes,
        msg: 'image is larger than CACHE_MAX_BYTES: used once and not cached',
      });
      const stored = { path: aside, sha256, size, cached: false };
      this.pins.pin(stored);
      return stored;
    }
    const path = this.layout.entry(sha256);
    // Verified bytes, still only in the page cache: the jobs waiting for them read them from there.
    // The fsync and the index row come after those jobs (DurableIndex.makeDurable): their volume
    // writes then get the disk to themselves. A crash before it leaves a file without a row, which
    // start-up removes; a row never names a file that is not durable.
    await rename(partial, path);
    this.index.placed({ sha256, size, format, url, etag, storedAt: new Date().toISOString() });
    const stored = { path, sha256, size, cached: true };
    this.pins.pin(stored);
    return stored;
  }

  /** No job reads the file any more: a cached one is made durable (then expanded). */
  private lastReaderGone(stored: Stored): void {
    if (!stored.cached) return;
    this.index.makeDurable(stored.sha256);
    this.expanded.startAfter(stored.sha256, this.index.whenDurable(stored.sha256));
  }

  /** Neither a job nor a base's verification reads the file: a used-once one goes. */
  private unused(stored: Stored): void {
    if (stored.cached) return;
    for (const path of [stored.path, this.layout.unpackedOf(stored.path)]) void rm(path, { force: true });
  }

  private acquire(stored: Stored, cacheHit: boolean, expandedPath?: string): LocalImage {
    const release = this.pins.take(stored);
    if (stored.cached && this.index.isDurable(stored.sha256))
      this.repository.touch(stored.sha256, new Date().toISOString());
    const { path, sha256, size: sizeBytes } = stored;
    return { path, sha256, sizeBytes, cacheHit, expandedPath, release, hold: () => this.pins.hold(stored) };
  }

  private async evict(): Promise<void> {
    const entries = this.repository.all();
    // An entry's expanded copy counts with it: both go together.
    const victims = chooseEvictions(
      entries.map((e) => ({
        sha256: e.sha256,
        size: e.size + this.expanded.bytesOf(e.sha256),
        lastUsedAt: e.lastUsedAt,
      })),
      this.limits,
      (sha256) => this.readersOf(sha256) > 0,
    );
    for (const { sha256, size, lastUsedAt } of victims) {
      this.repository.remove(sha256);
      await this.removeFiles(sha256);
      this.counters.evictions++;
      this.logger.log({ sha256, size, last_used_at: lastUsedAt, msg: 'cache eviction' });
    }
  }
}
