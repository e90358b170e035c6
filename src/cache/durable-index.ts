import { messageOf } from '../common/errors';
import { rm } from 'node:fs/promises';
import type { Logger } from '@nestjs/common';
import { fsyncPath } from '../common/fsync';
import { CacheEntry, CacheRepository } from './cache.repository';
import type { ImageRequest } from './image-store';

/** A new store file's index row, written once the file is durable. */
export type PendingRow = Parameters<CacheRepository['add']>[0] & { storedAt: string };

/** Whether a request would hit this image once it is indexed (the lookup rule of the index). */
export function wouldHit(row: PendingRow, { ref, expected }: ImageRequest): boolean {
  return expected
    ? row.sha256 === expected.sha256
    : ref.etag !== undefined && row.url === ref.url && row.etag === ref.etag && row.size === ref.size;
}

export interface DurableIndexDeps {
  repository: CacheRepository;
  logger: Logger;
  storeDir: string;
  pathOf: (sha256: string) => string;
  /** The file is durable and indexed (the cache evicts what no longer fits). */
  onDurable: (sha256: string) => Promise<void>;
}

/**
 * The index, and the files on their way into it. Verified bytes stay in the page cache while the
 * jobs waiting for them read them from there; the fsync and the index row come after those jobs
 * (their volume writes then get the disk to themselves). A crash before it leaves a file without
 * a row, which start-up removes; a row never names a file that is not durable.
 */
export class DurableIndex {
  /** Rows of new store files, written to the index once the files are durable (by sha256). */
  private readonly pending = new Map<string, PendingRow>();
  /** New store files whose data is not yet fsynced, hence not yet in the index (by sha256). */
  private readonly notDurable = new Set<string>();
  /** Running fsync-then-index steps, by sha256. */
  private readonly durability = new Map<string, Promise<void>>();

  constructor(private readonly deps: DurableIndexDeps) {}

  /** A new file is in the store (renamed there), not yet durable. */
  placed(row: PendingRow): void {
    this.pending.set(row.sha256, row);
    this.notDurable.add(row.sha256);
  }

  isDurable(sha256: string): boolean {
    return !this.notDurable.has(sha256);
  }

  /** Settles when the file's fsync-then-index step (if one runs) is over. */
  whenDurable(sha256: string): Promise<void> {
    return this.durability.get(sha256) ?? Promise.resolve();
  }

  /** Makes these new store files durable and indexed now, and waits for that; others are left alone. */
  async durableNow(sha256s: string[]): Promise<void> {
    for (const sha256 of sha256s) this.makeDurable(sha256);
    await Promise.allSettled(sha256s.map((sha256) => this.durability.get(sha256)));
  }

  /**
   * Makes every new store file durable and indexed. A file no job reads any more is fsynced now;
   * one still being read is fsynced when its last reader lets go.
   */
  async settled(): Promise<void> {
    await this.durableNow([...this.notDurable, ...this.durability.keys()]);
  }

  /** New store files, not yet indexed, that the request would hit once they are (by sha256). */
  pendingFor(request: ImageRequest): string[] {
    return [...this.pending.values()].filter((row) => wouldHit(row, request)).map((row) => row.sha256);
  }

  /** Downloads that will be indexed once durable (their jobs are still on), as index entries. */
  waiting(): CacheEntry[] {
    return [...this.pending.values()].map((row) => ({
      sha256: row.sha256,
      size: row.size,
      format: row.format,
      createdAt: row.storedAt,
      lastUsedAt: row.storedAt,
      useCount: 1,
      sources: row.etag === undefined ? [] : [{ url: row.url, etag: row.etag }],
    }));
  }

  makeDurable(sha256: string): void {
    if (!this.notDurable.delete(sha256)) return;
    const { repository, logger, pathOf } = this.deps;
    const started = Date.now();
    const step = (async () => {
      const row = this.pending.get(sha256)!;
      try {
        await fsyncPath(pathOf(sha256));
        await fsyncPath(this.deps.storeDir);
        repository.add(row, row.storedAt);
        logger.log({ sha256, seconds: (Date.now() - started) / 1000, msg: 'cache file made durable' });
        await this.deps.onDurable(sha256);
      } catch (error) {
        // Not durable, not indexed: the file is of no use to later jobs.
        logger.warn({
          sha256,
          error: messageOf(error),
          msg: 'could not keep the download in the cache',
        });
        await rm(pathOf(sha256), { force: true });
      } finally {
        this.pending.delete(sha256);
        this.durability.delete(sha256);
      }
    })();
    this.durability.set(sha256, step);
  }
}
