import { concat, Observable, of, type Subscription } from 'rxjs';
import type { GrowingFile } from '../../cache/image-store';
import { messageOf } from '../../common/errors';
import type { StreamConvertMode } from '../../config/groups/convert.settings';
import type { InspectSettings } from '../../config/groups/inspect.settings';
import type { InspectionMemo } from '../../convert/inspection-memo';
import { FetchedAheadDifferError } from '../../convert/nbd/reads-ahead';
import type { QemuImg } from '../../convert/qemu-img';
import type { VolumeBackend } from '../../volumes/volume-backend';
import type { JobRequest } from '../job.model';
import type { JobContext, PipelineStage, StageEvent } from './job-context';
import { afterDownload } from './stream-io';
import { streamWrite, type StreamProgress } from './stream-write';

export interface StreamDeps {
  qemuImg: QemuImg;
  volumes: VolumeBackend;
  inspect: InspectSettings;
  memo: InspectionMemo;
  /** settings.convert.stream (STREAM_CONVERT). */
  mode: StreamConvertMode;
  /** The stages whose work streaming overlaps: the download, and the volume's creation. */
  fetch: PipelineStage<JobRequest>;
  prepareVolume: PipelineStage;
}

/**
 * checking_cache, downloading, and, for a cold qcow2 or raw image of known length, streaming:
 * the image is written into the volume while it downloads (stream-write.ts). The job log says which
 * path ran and why. When the image streamed, `ctx.streamed` is set and the pipeline goes on with
 * finalizing; otherwise it takes today's path (inspecting, creating_volume, converting).
 *
 * The download's outcome wins: when it fails (source gone, checksum mismatch, cancel), the write
 * is stopped and the job fails with the download's error, not the EIO qemu-img saw.
 */
export function makeStreamStage(deps: StreamDeps): PipelineStage {
  return (ctx) => {
    if (deps.mode === 'off') return concat(deps.fetch(ctx), of(afterDownload('STREAM_CONVERT=off')));
    return new Observable<StageEvent>((subscriber) => {
      const abort = new AbortController();
      let fetching: Subscription | undefined;
      let writing: Promise<void> | undefined;
      let progress: StreamProgress | undefined;
      let ended = false;
      const fail = (error: unknown) => {
        if (ended) return;
        ended = true;
        subscriber.error(error);
      };

      // The download, as the fetch stage reports it; its progress joins the write's once streaming.
      const fetched = new Promise<void>((resolve, reject) => {
        fetching = deps.fetch(ctx).subscribe({
          next: (event) => {
            if (progress && event.type === 'progress') return progress.downloaded(event.bytesProcessed);
            subscriber.next(event);
            if (ctx.growing && !writing) writing = startWriting(ctx.growing);
          },
          error: reject,
          complete: resolve,
        });
      });
      // Settles when the download has, or the job gave up.
      const fetchSettled = new Promise<void>((resolve) => {
        fetched.then(resolve, resolve);
        abort.signal.addEventListener('abort', () => resolve(), { once: true });
      });

      const startWriting = (file: GrowingFile): Promise<void> =>
        streamWrite(deps, ctx as JobContext, file, {
          emit: (event) => subscriber.next(event),
          signal: abort.signal,
          downloadDone: fetched,
          onStreaming: (p) => (progress = p),
        }).catch(async (error: unknown) => {
          // Bytes fetched ahead of the download were not the downloaded ones: the volume may hold
          // them, the verified download does not. It is removed (or written whole again).
          if (error instanceof FetchedAheadDifferError) return writeAgain(error).catch(fail);
          if (!file.arrivals.failed && !abort.signal.aborted) return fail(error);
          // qemu-img saw the download fail (EIO): the download's own error is the job's.
          await fetchSettled;
          // Cancelled: the fetch was unsubscribed and never settles.
          if (abort.signal.aborted) return;
          const downloadFailed = await fetched.then(
            () => false,
            () => true,
          );
          if (downloadFailed) return;
          // The download ended well, but its growing file could not be read to the end (the source
          // sent the object again from its first byte): the volume may hold bytes of the old
          // version. It is removed (or, reused, written whole again) and today's path runs.
          await writeAgain(file.arrivals.failed ?? (error as Error)).catch(fail);
        });

      const writeAgain = async (why: Error) => {
        if (ctx.createdVolume) {
          await deps.volumes.remove(ctx.request.volume_name);
          ctx.createdVolume = false;
          subscriber.next({ type: 'fact', facts: { createdVolume: false } });
        }
        ctx.volume = undefined;
        ctx.inspected = undefined;
        ctx.streamed = false;
        progress = undefined;
        subscriber.next(
          afterDownload(`streaming stopped (${messageOf(why)}): written from the finished download`),
        );
      };

      void (async () => {
        try {
          await fetched;
        } catch (error) {
          abort.abort();
          await writing;
          return fail(error);
        }
        await writing;
        if (ended) return;
        if (!writing) {
          const reason = ctx.fetched?.image.cacheHit
            ? 'cache hit'
            : 'the source did not announce the length of the image';
          subscriber.next(afterDownload(reason));
        }
        ended = true;
        subscriber.complete();
      })();

      return () => {
        ended = true;
        fetching?.unsubscribe();
        abort.abort();
        if (writing) ctx.track(writing);
      };
    });
  };
}
