import { createHash } from 'node:crypto';
import type { Arrivals } from './arrivals';

/** Fetches bytes [offset, offset + length) of the image apart from its download (a range GET). */
export type RangeFetch = (offset: number, length: number, signal: AbortSignal) => Promise<Buffer>;

export interface ReadsAheadLimits {
  /** A read starting at least this far beyond the downloaded bytes is fetched apart. */
  minDistance: number;
  /** Bytes fetched apart at most, per export. */
  budget: number;
  /** Range requests at once. */
  maxInFlight: number;
  /** Failed range requests after which none is tried any more (a server that ignores ranges). */
  maxFailures: number;
}

/**
 * qemu-img convert keeps at most 8 requests of 2 MiB in flight (its -m and buffer defaults): 16 MiB
 * beyond where it converts. A read 32 MiB beyond the download is metadata read far ahead, not the
 * convert catching up with the download (which would fetch the same bytes twice).
 * The budget covers a qcow2's L2 tables (64 KiB per 512 MiB of virtual size with 64 KiB clusters:
 * 6.4 MB for 50 GiB) with room to spare, and stays small next to any image worth streaming.
 */
export const READS_AHEAD_LIMITS: ReadsAheadLimits = {
  minDistance: 32 * 1024 * 1024,
  budget: 64 * 1024 * 1024,
  maxInFlight: 4,
  maxFailures: 3,
};

/** What the fetches ahead did, for the job log and the tests. */
export interface ReadsAheadStats {
  /** Reads answered with bytes fetched apart. */
  fetched: number;
  bytes: number;
  /** Range requests that failed (those reads waited for the download instead). */
  failed: number;
}

/** The bytes fetched ahead differ from the download's: the object changed while it was read. */
export class FetchedAheadDifferError extends Error {
  constructor(readonly offset: number) {
    super(
      `bytes fetched ahead of the download at offset ${offset} differ from the downloaded ones ` +
        '(the object changed while it was read)',
    );
  }
}

/**
 * Reads far ahead of a download, fetched apart from it. Before it writes a byte, qemu-img convert
 * walks the whole image's allocation (for its progress): for a qcow2 that reads every L2 table,
 * and qemu-img places an L2 table where the data it maps begins (a 2 GiB image made by
 * `qemu-img convert`: at 0, 25, 50 and 75 % of the file). Left to wait for the download, the convert
 * starts only when three quarters of the file are in. A read starting `minDistance` or more beyond
 * the downloaded bytes is fetched with a range GET of the same version instead, within a budget.
 * The download's sha256 covers its own bytes, not these: each range served is compared with the
 * downloaded bytes once they arrive, and `verified()` fails on the first difference.
 */
export class ReadsAhead {
  readonly stats: ReadsAheadStats = { fetched: 0, bytes: 0, failed: 0 };
  private inFlight = 0;
  private spent = 0;
  private readonly comparisons: Promise<void>[] = [];

  constructor(
    private readonly fetch: RangeFetch,
    private readonly arrivals: Arrivals,
    private readonly signal: AbortSignal,
    private readonly limits: ReadsAheadLimits = READS_AHEAD_LIMITS,
  ) {}

  /** Whether a read of [offset, offset + length) is fetched apart rather than waiting for the download. */
  wants(offset: number, length: number): boolean {
    return (
      offset >= this.arrivals.bytes + this.limits.minDistance &&
      this.spent + length <= this.limits.budget &&
      this.inFlight < this.limits.maxInFlight &&
      this.stats.failed < this.limits.maxFailures &&
      !this.signal.aborted
    );
  }

  /** The bytes, fetched apart; undefined when the fetch failed (the read then waits for the download). */
  async take(offset: number, length: number): Promise<Buffer | undefined> {
    this.spent += length;
    this.inFlight++;
    try {
      const data = await this.fetch(offset, length, this.signal);
      this.stats.fetched++;
      this.stats.bytes += length;
      return data;
    } catch {
      this.stats.failed++;
      return undefined;
    } finally {
      this.inFlight--;
    }
  }

  /**
   * Compares `served` (the bytes at `offset` a reader was given) with the file once the download
   * has written them there; `readFile` fills a buffer from the file at an offset.
   */
  compareLater(
    offset: number,
    served: Buffer,
    readFile: (into: Buffer, offset: number) => Promise<void>,
  ): void {
    const length = served.length;
    const digest = sha256(served); // not the buffer: it goes back to the socket, and may be large
    const comparison = this.arrivals.waitFor(offset + length).then(async () => {
      const downloaded = Buffer.alloc(length);
      await readFile(downloaded, offset);
      if (!sha256(downloaded).equals(digest)) throw new FetchedAheadDifferError(offset);
    });
    comparison.catch(() => undefined); // seen by verified(); a failed download fails the job anyway
    this.comparisons.push(comparison);
  }

  /** Resolves once every range served matched the downloaded bytes (call after the download ended). */
  async verified(): Promise<void> {
    await Promise.all(this.comparisons);
  }
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}
