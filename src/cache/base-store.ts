/** A complete, verified golden base: the image as raw data, cloned for new volumes. */
export interface GoldenBase {
  sha256: string;
  virtualSize: number;
  path: string;
  /** sha256 of its raw content, computed when it was made. */
  rawSha256: string;
}

/** A base taken for one clone: it is not evicted or deleted until `release`. */
export interface BaseLease {
  base: GoldenBase;
  /**
   * `vanished`: the clone found no base file (removed behind the daemon's back): the store forgets
   * the base, so the job's conversion keeps a new one.
   */
  release(outcome?: { vanished?: boolean }): Promise<void>;
}

/** Whether new volumes can be clones here, and if not, why (for /readyz and the job log). */
export interface CloneSupport {
  enabled: boolean;
  reason?: string;
}

/** What a job that converted an image into a fresh volume hands over to keep a base of it. */
export interface KeepRequest {
  sha256: string;
  virtualSize: number;
  /** The freshly written volume: the base is a copy-on-write copy of it (reflink, thin snapshot). */
  volumePath: string;
  /** Its name (lvm-thin: the LV the base is a thin snapshot of). */
  volumeName: string;
  /** The image the volume was converted from (what the base is compared with), and its format. */
  imagePath: string;
  format: string;
  /**
   * The fields of the job's log lines: the lines about the base's verification, which ends after
   * the job, carry them too (`jq 'select(.job_id == ...)'` finds the whole story).
   */
  logFields?: object;
}

/**
 * `kept`: the copy of the fresh volume is made (a reflink, a thin snapshot: the job's volume may
 * change from now on without touching it) and is being verified against the image in the
 * background; `verified` settles with the complete base, or undefined when it failed verification
 * (the log says why; nothing of it is left). Only then can a clone be made from it. The image must
 * stay readable until `verified` settles: the caller holds it.
 */
export type KeepOutcome =
  | { kept: true; path: string; seconds: number; verified: Promise<GoldenBase | undefined> }
  | { kept: false; reason: string };

/**
 * The seam the pipeline uses for golden bases (cache/bases/base-catalog.ts implements it): take a
 * complete base to clone, or keep one after a conversion.
 */
export interface BaseStore {
  support(): Promise<CloneSupport>;
  /** A complete base of this image and virtual size, held until released; undefined when none. */
  acquire(sha256: string, virtualSize: number): BaseLease | undefined;
  keep(request: KeepRequest, signal: AbortSignal): Promise<KeepOutcome>;
}

/** A complete base as listed by GET /api/v1/cache. */
export interface BaseRecord extends GoldenBase {
  /** Bytes it occupies: blocks of its file, or thin-pool data it pins (what BASE_MAX_BYTES counts). */
  allocatedBytes: number;
  createdAt: string;
  lastUsedAt: string;
}

/**
 * What the cache, its API and /readyz need besides the pipeline's seam: one catalog
 * (GoldenBaseCatalog, bases/base-catalog.ts) driving a storage per backend (bases/base-storage.ts:
 * FileBaseStorage for file volumes, reflinks; ThinBaseStorage for lvm-thin, thin snapshots).
 */
export interface BaseCatalog extends BaseStore {
  /** Start-up, after the image index is recovered: half-made bases and orphans go. */
  recover(isCached: (sha256: string) => boolean): Promise<void>;
  /** Complete bases, most recently used first, with the clones being made from each. */
  list(): (BaseRecord & { cloning: number })[];
  readonly limits: { maxBytes: number; maxCount: number };
  /** With its image: the image's bases go too; their clones stay. */
  removeImage(sha256: string): Promise<void>;
  /**
   * Shutdown, before the cache's index closes: verifications still running stop (their copies are
   * removed, as the next start would) and no base is kept any more.
   */
  close(): Promise<void>;
}

export const BASE_STORE = Symbol('BaseStore');
