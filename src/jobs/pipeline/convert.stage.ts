import { dirname } from 'node:path';
import { catchError, concat, defer, EMPTY, map, of } from 'rxjs';
import { NoSpaceError } from '../../common/errors';
import { skipsZeroWrites, type ConvertOptions, type QemuImg } from '../../convert/qemu-img';
import { throughTarget, type VolumeBackend } from '../../volumes/volume-backend';
import { jobLog, type JobEvent } from '../job-event';
import { throughput } from '../job-log';
import { need, type PipelineStage } from './job-context';

export interface ConvertDeps {
  qemuImg: QemuImg;
  volumes: VolumeBackend;
}

/**
 * converting: qemu-img writes the image as raw data into the volume; its -p output is the progress.
 * A clone of a golden base holds the image already: nothing to write.
 */
export function makeConvertStage({ qemuImg, volumes }: ConvertDeps): PipelineStage {
  return (ctx) =>
    defer(() => {
      const { info, format, readPath } = need(ctx.inspected);
      const volume = need(ctx.volume);
      if (volume.clonedFrom) return EMPTY;
      const virtualSize = info.virtualSize;
      const options: ConvertOptions = {
        sourceFormat: format,
        targetCache: volume.cacheMode,
        targetIsZero: volume.readsAsZeros,
        track: (exited) => ctx.track(exited),
      };
      let started = 0;
      return concat(
        of<JobEvent>({ type: 'stage', stage: 'converting' }),
        defer(() => {
          started = Date.now();
          // qemu-img writes through the descriptor the backend opened and verified (never by name).
          return throughTarget(volumes, volume, (targetFd) =>
            qemuImg.convert(readPath, volume.path, { ...options, targetFd }),
          );
        }).pipe(
          catchError((error: Error) => {
            if (/No space left on device/i.test(error.message)) {
              throw new NoSpaceError(dirname(volume.path), `writing volume ${ctx.request.volume_name}`);
            }
            throw error;
          }),
          map((percent): JobEvent => ({
            type: 'progress',
            bytesProcessed: Math.round((virtualSize * percent) / 100),
            bytesTotal: virtualSize,
            fraction: percent / 100,
          })),
        ),
        defer(() => {
          const seconds = (Date.now() - started) / 1000;
          return of(
            jobLog('image written to the volume', {
              virtual_size: virtualSize,
              seconds,
              bytes_per_second: throughput(virtualSize, seconds),
              target_cache: volume.cacheMode,
              target_is_zero: skipsZeroWrites(options),
            }),
          );
        }),
      );
    });
}
