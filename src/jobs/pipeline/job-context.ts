import { Observable } from 'rxjs';
import type { ExpectedChecksum, LocalImage } from '../../cache/image-store';
import type { JobScope } from '../../common/job-scope';
import type { ImageInfo } from '../../convert/qemu-img';
import type { WritableVolume } from '../../lvm/volume-backend';
import type { ImageRef } from '../../storage/image-source';
import type { JobEvent } from '../job-event';
import type { JobRequest, ProvisionRequest } from '../job.model';

/** What the stages of one job learn and make, in order; rollback reads it. */
export interface JobContext<R extends JobRequest = ProvisionRequest> extends JobScope {
  readonly request: R;
  ref?: ImageRef;
  /** The sha256 the image must have, when the request or a sidecar says. */
  expected?: ExpectedChecksum;
  image?: LocalImage;
  /** The file qemu-img reads: the image itself, or its unpacked form when it came compressed. */
  readPath?: string;
  info?: ImageInfo;
  /** The format qemu-img reads the image as: the one its header shows (checked against image_type). */
  format?: string;
  volume?: WritableVolume;
  /** True from just before this job creates its volume; only then may rollback remove it. */
  createdVolume: boolean;
}

/**
 * A stage whose work is one async function. Unsubscribing aborts the signal given to `work`, and
 * the job waits (through `track`) until `work` has noticed and finished before rolling back.
 */
export function asyncStage(
  ctx: JobScope,
  work: (emit: (event: JobEvent) => void, signal: AbortSignal) => Promise<void>,
): Observable<JobEvent> {
  return new Observable<JobEvent>((subscriber) => {
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
