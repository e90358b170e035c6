import type { Observable } from 'rxjs';
import type { JobScope } from '../common/job-scope';
import type { Wrapper } from '../convert/decompressor';
import type { Arrivals } from '../convert/nbd/arrivals';
import type { RangeFetch } from '../convert/nbd/reads-ahead';
import type { ImageRef } from '../storage/image-source';

/** The sha256 an image must have, and who said so (for the error message). */
export interface ExpectedChecksum {
  sha256: string;
  origin: string;
}

export interface ImageRequest {
  ref: ImageRef;
  expected?: ExpectedChecksum;
}

/** An image on local disk, ready for qemu-img. */
export interface LocalImage {
  path: string;
  sha256: string;
  sizeBytes: number;
  cacheHit: boolean;
  /**
   * The cache's expanded copy of a qcow2 with compressed clusters (`<hex>.expanded`, the same
   * image without compression), when one exists: what a job reads instead of `path`.
   */
  expandedPath?: string;
  /** Called once the job no longer reads the file (success or not). */
  release(): Promise<void>;
  /**
   * A hold on the file (and its unpacked and expanded forms) for work that goes on after the job:
   * a golden base's verification. The file is not evicted or deleted until the returned function
   * is called; its fsync and index row do not wait for it (they wait for the jobs only).
   */
  hold(): () => Promise<void>;
}

/**
 * A download in progress that a job may read while it grows: the partial file, and how many of
 * its bytes are in it (failed when the download fails or every job gave it up). Only for sources
 * that announce the length. The file is renamed into the store once verified; a reader that opened
 * it before keeps reading the same file.
 */
export interface GrowingFile {
  path: string;
  arrivals: Arrivals;
  /** Fetches bytes of the image apart from the download (a range GET), for reads far ahead of it. */
  fetchRange?: RangeFetch;
}

export type FetchEvent =
  | { kind: 'checked'; cacheHit: boolean }
  /** Sent to every job sharing a download whose length is known, soon after it starts. */
  | { kind: 'growing'; file: GrowingFile }
  | { kind: 'progress'; bytes: number; total?: number }
  /** A transfer attempt failed; the download goes on after a delay (resuming at `resumeAt`). */
  | { kind: 'retry'; retry: number; error: string; resumeAt: number }
  /** The download goes on from `fromBytes` bytes a crash left (re-hashed, then a range request). */
  | { kind: 'resumed'; fromBytes: number }
  /** Bytes a crash left could not be used (`reason`): the download starts from zero. */
  | { kind: 'restarted'; reason: string; bytesOnDisk: number }
  /** `download` is set when this request's bytes were transferred (not a cache hit). */
  | { kind: 'ready'; image: LocalImage; download?: { bytes: number; seconds: number } };

/**
 * The Storage/Cache seam the pipeline depends on: turn an image request into a verified local
 * file, emitting progress on the way. Unsubscribing stops this job's interest; a transfer no job
 * needs any more is aborted and its partial file removed.
 */
/** Partial downloads kept across a crash (RESUME_INTERRUPTED), so jobs can resume them. */
export interface PartialDownloads {
  /** After a restart: kept for the jobs about to resume with these image URLs; the others are removed. */
  adopt(urls: string[]): Promise<void>;
  /** A job with this image URL ended without taking up its kept partial (cache hit, failed first): it goes. */
  discard(url: string): Promise<void>;
}

export interface ImageStore {
  obtain(request: ImageRequest, job: JobScope): Observable<FetchEvent>;
  /** The partial downloads a crash interrupted, kept in tmp/ for their jobs to resume. */
  readonly partials: PartialDownloads;
  /** Path of the decompressed form of a compressed image, made once and kept with it. */
  unpacked(
    image: LocalImage,
    wrapper: Wrapper,
    maxBytes: number,
    job: JobScope,
    signal: AbortSignal,
  ): Promise<string>;
  /**
   * Tells the store that `readPath` (the image, or its unpacked form) is a qcow2 with compressed
   * clusters that passed inspection: it makes an expanded copy (about `estimatedBytes`) in the
   * background once no job reads the image any more, for later jobs to read instead.
   */
  expandLater(image: LocalImage, readPath: string, estimatedBytes: number): void;
}

export const IMAGE_STORE = Symbol('ImageStore');
