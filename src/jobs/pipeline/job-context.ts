import { Observable } from 'rxjs';
import type { ExpectedChecksum, GrowingFile, LocalImage } from '../../cache/image-store';
import type { JobScope } from '../../common/job-scope';
import type { Wrapper } from '../../convert/decompressor';
import type { ImageInfo } from '../../convert/qemu-img';
import type { WritableVolume } from '../../volumes/volume-backend';
import type { ImageRef } from '../../storage/image-source';
import type { JobEvent } from '../job-event';
import type { JobRequest, ProvisionRequest } from '../job.model';

/** resolve's result: where the image is, and the sha256 it must have when the request or a sidecar says. */
export interface Resolved {
  ref: ImageRef;
  expected?: ExpectedChecksum;
}

/** fetch's result: the verified image on local disk, and what the cache offers for reading it. */
export interface Fetched {
  image: LocalImage;
  /** The file to read: the cache's expanded copy of a compressed qcow2 when it has one, else the image. */
  path: string;
  /** The decompressed form of a gz/xz/zst/bz2-wrapped image (at most `maxBytes`), made once by the cache. */
  unpacked(wrapper: Wrapper, maxBytes: number, signal: AbortSignal): Promise<string>;
}

/** inspect's result: what the image is, as qemu-img reads it. */
export interface Inspected {
  info: ImageInfo;
  /** The format qemu-img reads the image as: the one its header shows (checked against image_type). */
  format: string;
  /** The file qemu-img reads: the image itself, or its unpacked form when it came compressed. */
  readPath: string;
}

/** What the stages of one job learn and make, one field per stage, in order; rollback reads it. */
export interface JobContext<R extends JobRequest = ProvisionRequest> extends JobScope {
  readonly request: R;
  resolved?: Resolved;
  /** Set by fetch while a download of known length runs: the file as it grows (stream.stage.ts). */
  growing?: GrowingFile;
  fetched?: Fetched;
  inspected?: Inspected;
  volume?: WritableVolume;
  /** Set by the streaming stage when it inspected and wrote the image: the later stages up to finalize are skipped. */
  streamed?: boolean;
  /** True from just before this job creates its volume; only then may rollback remove it. */
  createdVolume: boolean;
  /**
   * Resolves once the job's state as emitted so far is on disk (the database's WAL fdatasynced in
   * the thread pool, off the event loop): what a stage awaits before acting on a fact it emitted.
   */
  persisted(): Promise<void>;
}

/**
 * Tells the cache that the image read is a qcow2 with compressed clusters that passed inspection:
 * the pipeline hands it to the cache (ImageStore.expandLater), which may make an expanded copy of
 * about `estimatedBytes` for later jobs. The job's state does not change.
 */
export interface CompressedImageEvent {
  type: 'compressed_image';
  readPath: string;
  estimatedBytes: number;
}

/** What a stage emits: the job's own events, and what the cache should learn. */
export type StageEvent = JobEvent | CompressedImageEvent;

/** A stage, made once from its dependencies by a `makeXStage(deps)` factory. */
export type PipelineStage<R extends JobRequest = ProvisionRequest> = (
  ctx: JobContext<R>,
) => Observable<StageEvent>;

/**
 * A stage's result, read by a later stage. A missing one means the stages ran out of order: a bug
 * in the pipeline, not something an operator can fix.
 */
export function need<T>(result: T | undefined): T {
  if (result === undefined) {
    throw new Error('internal error: a pipeline stage ran before the stage whose result it reads');
  }
  return result;
}

/**
 * A stage whose work is one async function. Unsubscribing aborts the signal given to `work`, and
 * the job waits (through `track`) until `work` has noticed and finished before rolling back.
 */
export function asyncStage(
  ctx: JobScope,
  work: (emit: (event: StageEvent) => void, signal: AbortSignal) => Promise<void>,
): Observable<StageEvent> {
  return new Observable<StageEvent>((subscriber) => {
    const abort = new AbortController();
    let done = false;
    const running = work((event) => subscriber.next(event), abort.signal).then(
      () => {
        done = true;
        subscriber.complete();
      },
      (error) => {
        done = true;
        subscriber.error(error);
      },
    );
    return () => {
      if (!done) {
        abort.abort();
        ctx.track(running);
      }
    };
  });
}
