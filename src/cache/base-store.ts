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
  /** The freshly written volume: the base is a reflink copy of it. */
  volumePath: string;
  /** The image the volume was converted from (what the base is compared with), and its format. */
  imagePath: string;
  format: string;
}

export type KeepOutcome = { kept: true; base: GoldenBase; seconds: number } | { kept: false; reason: string };

/**
 * The seam the pipeline uses for golden bases (cache/bases/golden-bases.ts implements it): take a
 * complete base to clone, or keep one after a conversion.
 */
export interface BaseStore {
  support(): Promise<CloneSupport>;
  /** A complete base of this image and virtual size, held until released; undefined when none. */
  acquire(sha256: string, virtualSize: number): BaseLease | undefined;
  keep(request: KeepRequest, signal: AbortSignal): Promise<KeepOutcome>;
}

export const BASE_STORE = Symbol('BaseStore');
