import type { Observable } from 'rxjs';
import type { JobScope } from '../common/job-scope';
import type { ImageRef } from '../storage/image-source';

/** An image on local disk, ready for qemu-img. */
export interface LocalImage {
  path: string;
  sha256: string;
  sizeBytes: number;
  cacheHit: boolean;
  /** Called once the job no longer reads the file (success or not). */
  release(): Promise<void>;
}

export type FetchEvent =
  | { kind: 'checked'; cacheHit: boolean }
  | { kind: 'progress'; bytes: number; total?: number }
  | { kind: 'ready'; image: LocalImage };

/**
 * The Storage/Cache seam the pipeline depends on: turn an ImageRef into a local file, emitting
 * progress on the way. Unsubscribing aborts the transfer and removes partial files.
 */
export interface ImageStore {
  obtain(ref: ImageRef, job: JobScope): Observable<FetchEvent>;
  /** Removes partial files a crash left behind; called once at start. */
  sweep(): Promise<number>;
}

export const IMAGE_STORE = Symbol('ImageStore');
