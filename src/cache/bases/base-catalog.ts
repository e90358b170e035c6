import { messageOf } from '../../common/errors';
import { Settings } from '../../config/settings';
import type {
  BaseCatalog,
  BaseLease,
  BaseRecord,
  CloneSupport,
  KeepOutcome,
  KeepRequest,
} from '../base-store';
import { chooseBaseEvictions } from './base-layout';
import type { BaseStorage } from './base-storage';

export type { BaseRecord } from '../base-store';

/**
 * The golden bases of this daemon, whatever the backend: which exist, which are being made, the
 * clones being made from each (leases), and which go when (LRU against BASE_MAX_BYTES /
 * BASE_MAX_COUNT, with their image). Where and how a base is made and removed is its storage's
 * (base-storage.ts: reflinked files for file volumes, thin snapshots for lvm-thin; cache.module.ts
 * picks one by VOLUME_BACKEND). A base is never removed while a clone is being made from it: it
 * goes when that clone is done.
 */
export class GoldenBaseCatalog implements BaseCatalog {
  private readonly bases = new Map<string, BaseRecord>();
  /** Clones being made from each base (by key): it is not evicted or removed meanwhile. */
  private readonly leases = new Map<string, number>();
  /** Bases being made: copied by a job, being verified in the background (`keep`). */
  private readonly making = new Set<string>();
  private readonly verifying = new Set<Promise<BaseRecord | undefined>>();
  private readonly stopping = new AbortController();
  private closed = false;

  constructor(
    private readonly settings: Settings,
    private readonly storage: BaseStorage,
  ) {}

  async support(): Promise<CloneSupport> {
    if (this.settings.bases.cloneFromBase === 'off') return { enabled: false, reason: 'CLONE_FROM_BASE=off' };
    return this.storage.support();
  }

  /**
   * Start-up, after the image index is recovered: half-made bases and bases of images no longer
   * cached are removed (all of them with CLONE_FROM_BASE=off); the complete ones are known again.
   */
  async recover(isCached: (sha256: string) => boolean): Promise<void> {
    const off = this.settings.bases.cloneFromBase === 'off';
    for (const [key, base] of await this.storage.recover(isCached, off)) this.bases.set(key, base);
    await this.evict();
  }

  acquire(sha256: string, virtualSize: number): BaseLease | undefined {
    const key = this.storage.keyOf(sha256, virtualSize);
    const base = this.bases.get(key);
    if (!base) return undefined;
    this.leases.set(key, (this.leases.get(key) ?? 0) + 1);
    // Its use is when the clone starts: a base made meanwhile is newer, and goes after it.
    base.lastUsedAt = new Date().toISOString();
    let released = false;
    return {
      base,
      release: async (outcome) => {
        if (released) return;
        released = true;
        const left = (this.leases.get(key) ?? 1) - 1;
        if (left > 0) this.leases.set(key, left);
        else this.leases.delete(key);
        if (outcome?.vanished && this.bases.get(key) === base) {
          this.bases.delete(key);
          await this.storage.vanished(key);
          await this.tidyIfEmpty();
        } else if (this.bases.get(key) === base) {
          // (A base forgotten or removed meanwhile gets no record of its use written again.)
          await this.storage.recordUse(key, base);
        }
        if (left <= 0) await this.evict();
      },
    };
  }

  /**
   * After a job converted an image into a fresh volume: copies the volume (in the job: reflink or
   * thin snapshot, milliseconds), then verifies the copy against the image in the background
   * (qemu-img compare, sha256 of its raw content: seconds to minutes, which the job no longer
   * waits for). Until that ends the base is being made: no clone is made from it, and no other
   * job makes it again. The caller keeps the image readable until `verified` settles.
   */
  async keep(request: KeepRequest, signal: AbortSignal): Promise<KeepOutcome> {
    if (this.closed) return { kept: false, reason: 'the daemon is stopping' };
    const support = await this.support();
    if (!support.enabled) return { kept: false, reason: support.reason ?? 'clones are off' };
    const key = this.storage.keyOf(request.sha256, request.virtualSize);
    if (this.bases.has(key)) return { kept: false, reason: 'a base of this image exists already' };
    if (this.making.has(key)) return { kept: false, reason: 'another job is making the base of this image' };
    const room = await this.storage.room(key, request);
    if ('reason' in room) return { kept: false, reason: room.reason };
    const { maxBytes, maxCount } = this.settings.bases;
    if (maxCount === 0 || room.bytes > maxBytes) {
      return {
        kept: false,
        reason: `BASE_MAX_BYTES (${maxBytes}) / BASE_MAX_COUNT (${maxCount}) leave no room for it`,
      };
    }
    this.making.add(key);
    const started = Date.now();
    let path: string;
    try {
      ({ path } = await this.storage.copy(key, request, signal));
    } catch (error) {
      this.making.delete(key);
      await this.tidyIfEmpty();
      if (signal.aborted) throw error;
      return { kept: false, reason: messageOf(error) };
    }
    const verified = this.verifyLater(key, request);
    this.verifying.add(verified);
    void verified.finally(() => this.verifying.delete(verified));
    return { kept: true, path, seconds: (Date.now() - started) / 1000, verified };
  }

  /** The background half of `keep`: never rejects; the log says how it ended, with the job's fields. */
  private async verifyLater(key: string, request: KeepRequest): Promise<BaseRecord | undefined> {
    const started = Date.now();
    try {
      const base = await this.storage.verify(key, request, this.stopping.signal);
      this.bases.set(key, base);
      this.storage.logger.log({
        ...request.logFields,
        base: base.path,
        raw_sha256: base.rawSha256,
        seconds: (Date.now() - started) / 1000,
        msg: 'golden base kept',
      });
      await this.evict();
      return base;
    } catch (error) {
      this.storage.logger.warn({
        ...request.logFields,
        reason: this.stopping.signal.aborted ? 'the daemon is stopping' : messageOf(error),
        msg: 'no golden base kept',
      });
      return undefined;
    } finally {
      this.making.delete(key);
      await this.tidyIfEmpty().catch(() => undefined);
    }
  }

  /** Shutdown: verifications still running stop (their copies are removed); no base is kept after. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopping.abort();
    await Promise.all([...this.verifying]);
  }

  /** Complete bases, most recently used first, with the clones being made from each. */
  list(): (BaseRecord & { cloning: number })[] {
    return [...this.bases.entries()]
      .map(([key, base]) => ({ ...base, cloning: this.leases.get(key) ?? 0 }))
      .sort((a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt));
  }

  get limits() {
    return { maxBytes: this.settings.bases.maxBytes, maxCount: this.settings.bases.maxCount };
  }

  /** With its image (DELETE /api/v1/cache/{sha256}, eviction): the image's bases go too; clones stay. */
  async removeImage(sha256: string): Promise<void> {
    for (const [key, base] of [...this.bases]) {
      if (base.sha256 !== sha256) continue;
      this.bases.delete(key);
      await this.storage.removeWithImage(key, base);
      await this.tidyIfEmpty();
    }
  }

  /**
   * Least recently used first, beyond BASE_MAX_BYTES / BASE_MAX_COUNT. Eviction waits for a base
   * a clone is being made from: it stops there (newer bases are not removed in its place) and
   * goes on when that clone is done (`release`). Clones take milliseconds; the overshoot is brief.
   */
  private async evict(): Promise<void> {
    const victims = chooseBaseEvictions(
      [...this.bases].map(([key, base]) => ({ key, size: base.allocatedBytes, lastUsedAt: base.lastUsedAt })),
      this.limits,
      (key) => (this.leases.get(key) ?? 0) > 0,
    );
    for (const { key, size, lastUsedAt } of victims) {
      this.bases.delete(key);
      const removed = await this.storage.remove(key);
      await this.tidyIfEmpty();
      if (removed) {
        this.storage.logger.log({ base: key, size, last_used_at: lastUsedAt, msg: 'golden base eviction' });
      }
    }
  }

  /** Once no base is held or being made, the storage may tidy up (file: the bases directory goes). */
  private async tidyIfEmpty(): Promise<void> {
    if (this.bases.size === 0 && this.making.size === 0) await this.storage.emptied();
  }
}
