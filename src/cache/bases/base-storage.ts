import type { Logger } from '@nestjs/common';
import type { BaseRecord, CloneSupport, KeepRequest } from '../base-store';

/**
 * Where golden bases live and how one is made and removed: the port the catalog (base-catalog.ts)
 * drives, one implementation per backend: file-base-storage.ts (reflinked files beside file
 * volumes) and thin-base-storage.ts (read-only thin LVs of lvm-thin). The catalog keeps the
 * bookkeeping (which bases exist, the ones being made, leases, LRU, limits); a storage knows only
 * its own bases, each under a key (a file name stem, an LV name), and never evicts on its own.
 */
export interface BaseStorage {
  /** The catalog logs through it too: its lines keep the context they always had (GoldenBases, ThinBases). */
  readonly logger: Pick<Logger, 'log' | 'warn'>;
  /** Whether this backend can keep and clone bases here (CLONE_FROM_BASE=off is the catalog's). */
  support(): Promise<CloneSupport>;
  /** The key a base of this image and virtual size is held under. */
  keyOf(sha256: string, virtualSize: number): string;
  /**
   * Start-up: removes half-made bases and those of images `isCached` no longer knows (all of them
   * when `off`, CLONE_FROM_BASE=off); returns the complete ones left, by key.
   */
  recover(isCached: (sha256: string) => boolean, off: boolean): Promise<Map<string, BaseRecord>>;
  /** Before a base is made: the bytes it will count against BASE_MAX_BYTES, or why none can be made. */
  room(key: string, request: KeepRequest): Promise<{ bytes: number } | { reason: string }>;
  /**
   * In the job, while its fresh volume holds exactly the image: the copy-on-write copy of it that
   * becomes the base (partial until `verify`); on failure removes what it made. Milliseconds.
   */
  copy(key: string, request: KeepRequest, signal: AbortSignal): Promise<{ path: string }>;
  /**
   * After the job, in the background: compares the copy with the image, hashes it and completes it
   * (only then is it a base); on failure or abort removes it.
   */
  verify(key: string, request: KeepRequest, signal: AbortSignal): Promise<BaseRecord>;
  /** The last use of a base (`base.lastUsedAt`), kept across a restart where this storage can. */
  recordUse(key: string, base: BaseRecord): Promise<void>;
  /** A clone found no base (removed behind the daemon's back): what is left of it goes; said in the log. */
  vanished(key: string): Promise<void>;
  /** Removes a base the catalog let go; false when it could not (the log says why and what to do). */
  remove(key: string): Promise<boolean>;
  /** Removes a base with its image, and says so in the log. */
  removeWithImage(key: string, base: BaseRecord): Promise<void>;
  /** The catalog holds no base and makes none: a storage with a directory of its own removes it. */
  emptied(): Promise<void>;
}
