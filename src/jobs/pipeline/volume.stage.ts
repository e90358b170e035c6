import { ImageRejectedError, VolumeNotRegularFileError } from '../../common/errors';
import { GIB, type VolumeBackend, type WritableVolume } from '../../volumes/volume-backend';
import { findReusable } from '../../volumes/volume-reuse';
import { jobLog } from '../job-event';
import { asyncStage, need, type PipelineStage } from './job-context';

export interface VolumeDeps {
  volumes: VolumeBackend;
}

/** creating_volume: create the volume, or reuse an existing one within ±5 % of the requested size. */
export function makeVolumeStage({ volumes }: VolumeDeps): PipelineStage {
  return (ctx) =>
    asyncStage(ctx, async (emit) => {
      emit({ type: 'stage', stage: 'creating_volume' });
      const { info } = need(ctx.inspected);
      const name = ctx.request.volume_name;
      const requested = ctx.request.volume_size_gb * GIB;
      const existing = await findReusable(volumes, name, requested);
      if (existing) {
        if (existing.sizeBytes < info.virtualSize) {
          throw new ImageRejectedError(
            `existing volume ${name} has ${existing.sizeBytes} bytes, less than the image's virtual size ` +
              `of ${info.virtualSize} bytes`,
          );
        }
        ctx.volume = await volumes.reuse(existing);
        // Made by this job before a restart: still its own, so rollback still removes it.
        const own = ctx.createdVolume;
        emit({ type: 'fact', facts: { reusedVolume: !own, volumePath: ctx.volume.path } });
        emit(
          jobLog(
            own ? 'volume this job created before the restart reused' : 'volume reused',
            describe(ctx.volume),
          ),
        );
        return;
      }
      // Recorded (and persisted) before the volume exists, so a crash at any point after leaves a
      // record that lets the next start remove it.
      ctx.createdVolume = true;
      emit({ type: 'fact', facts: { createdVolume: true, volumePath: volumes.pathFor(name) } });
      try {
        ctx.volume = await volumes.create(name, requested);
        emit(jobLog('volume created', describe(ctx.volume)));
      } catch (error) {
        if (
          (error as NodeJS.ErrnoException).code === 'EEXIST' ||
          error instanceof VolumeNotRegularFileError
        ) {
          // Someone else made it meanwhile: it is not ours to remove.
          ctx.createdVolume = false;
          emit({ type: 'fact', facts: { createdVolume: false } });
        }
        throw error;
      }
    });
}

function describe(volume: WritableVolume): Record<string, unknown> {
  return {
    volume_path: volume.path,
    size_bytes: volume.sizeBytes,
    reads_as_zeros: volume.readsAsZeros,
    cache_mode: volume.cacheMode,
  };
}
