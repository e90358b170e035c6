import { dirname } from 'node:path';
import { catchError, concat, defer, map, of, type Observable } from 'rxjs';
import { NoSpaceError } from '../../common/errors';
import { convertArgs, type QemuImg } from '../../convert/qemu-img';
import { throughTarget, type VolumeBackend } from '../../lvm/volume-backend';
import { jobLog, type JobEvent } from '../job-event';
import { throughput } from '../job-log';
import type { JobContext } from './job-context';

/** converting: qemu-img writes the image as raw data into the volume; its -p output is the progress. */
export function convertStage(
  ctx: JobContext,
  qemuImg: QemuImg,
  volumes: VolumeBackend,
): Observable<JobEvent> {
  let started = 0;
  return concat(
    of<JobEvent>({ type: 'stage', stage: 'converting' }),
    defer(() => {
      started = Date.now();
      const virtualSize = ctx.info!.virtualSize;
      return throughTarget(volumes, ctx.volume!, (targetFd) =>
        qemuImg.convert(ctx.readPath!, ctx.volume!.path, {
          sourceFormat: ctx.format!,
          targetCache: ctx.volume!.cacheMode,
          targetIsZero: ctx.volume!.readsAsZeros,
          track: (exited) => ctx.track(exited),
          targetFd,
        }),
      ).pipe(
        catchError((error: Error) => {
          if (/No space left on device/i.test(error.message)) {
            throw new NoSpaceError(dirname(ctx.volume!.path), `writing volume ${ctx.request.volume_name}`);
          }
          throw error;
        }),
        map((percent): JobEvent => ({
          type: 'progress',
          bytesProcessed: Math.round((virtualSize * percent) / 100),
          bytesTotal: virtualSize,
          fraction: percent / 100,
        })),
      );
    }),
    defer(() => {
      const seconds = (Date.now() - started) / 1000;
      const bytes = ctx.info!.virtualSize;
      return of(
        jobLog('image written to the volume', {
          virtual_size: bytes,
          seconds,
          bytes_per_second: throughput(bytes, seconds),
          target_cache: ctx.volume!.cacheMode,
          target_is_zero: convertArgs('', '', {
            sourceFormat: ctx.format!,
            targetCache: ctx.volume!.cacheMode,
            targetIsZero: ctx.volume!.readsAsZeros,
          }).includes('--target-is-zero'),
        }),
      );
    }),
  );
}
