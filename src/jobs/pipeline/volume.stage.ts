import type { BaseStore } from '../../cache/base-store';
import { ImageRejectedError, messageOf, VolumeNotRegularFileError } from '../../common/errors';
import { GIB, isReusableSize, type VolumeBackend, type WritableVolume } from '../../volumes/volume-backend';
import { findReusable } from '../../volumes/volume-reuse';
import { jobLog, type JobEvent } from '../job-event';
import { asyncStage, need, type JobContext, type PipelineStage, type StageEvent } from './job-context';

export interface VolumeDeps {
  volumes: VolumeBackend;
  bases: BaseStore;
}

/**
 * creating_volume: create the volume, or reuse an existing one within ±5 % of the requested size
 * (overwritten by converting, as before). A new volume on an image with a golden base is a clone
 * of it (stage `cloning`); without one it is created empty, and the job log says why no clone.
 */
export function makeVolumeStage({ volumes, bases }: VolumeDeps): PipelineStage {
  return (ctx) =>
    asyncStage(ctx, async (emit, signal) => {
      emit({ type: 'stage', stage: 'creating_volume' });
      const { info } = need(ctx.inspected);
      const name = ctx.request.volume_name;
      const requested = ctx.request.volume_size_gb * GIB;
      if (ctx.createdVolume) await removeHalfMadeClone(volumes, ctx, requested, emit);
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
      const clone = await cloneSource(bases, volumes, ctx);
      // Recorded, and on disk, before the volume exists, so a crash (or a power cut) at any point
      // after leaves a record that lets the next start remove it (a half-made clone too).
      ctx.createdVolume = true;
      emit({ type: 'fact', facts: { createdVolume: true, volumePath: volumes.pathFor(name) } });
      await ctx.persisted();
      try {
        let noCloneBecause = clone.reason;
        if (clone.lease && volumes.cloneFrom) {
          emit({ type: 'stage', stage: 'cloning' });
          const started = Date.now();
          const { base } = clone.lease;
          try {
            ctx.volume = await volumes.cloneFrom(name, requested, base.path);
            await clone.lease.release();
            emit({ type: 'fact', facts: { cloneBase: base.path } });
            emit(cloned(ctx.volume, base.rawSha256, (Date.now() - started) / 1000));
            return;
          } catch (error) {
            const code = (error as NodeJS.ErrnoException).code;
            await clone.lease.release({ vanished: code === 'ENOENT' });
            if (signal.aborted || !fallsBackToConverting(error)) throw error;
            // Whatever the failed clone left at the path is this job's (EXCL refused anything else).
            await volumes.remove(name);
            noCloneBecause = `the clone from the golden base failed (${messageOf(error)}); converting`;
            emit(
              jobLog('clone failed: converting instead', { base: base.path, error: messageOf(error), code }),
            );
          }
        }
        ctx.volume = await volumes.create(name, requested);
        emit(
          jobLog('volume created', {
            ...describe(ctx.volume),
            clone: false,
            no_clone_because: noCloneBecause,
          }),
        );
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

/**
 * A job resumed after a crash that had made its volume: a clone cut off between the reflink and
 * growing it to the requested size has the base's size, which the ±5 % rule would refuse (409)
 * although the file is this job's own. It is removed and made again; a volume of the right size
 * is reused and converted into (never cloned into: it may hold anything by now).
 */
async function removeHalfMadeClone(
  volumes: VolumeBackend,
  ctx: JobContext,
  requested: number,
  emit: (event: StageEvent) => void,
): Promise<void> {
  const own = await volumes.find(ctx.request.volume_name);
  if (!own || own.inUseBy || isReusableSize(own.sizeBytes, requested)) return;
  await volumes.remove(ctx.request.volume_name);
  emit(
    jobLog('half-made volume this job created before the restart removed', {
      volume_path: own.path,
      size_bytes: own.sizeBytes,
    }),
  );
}

/**
 * A clone that failed for a reason of its own (reflink refused, no space for the clone's
 * metadata, the base file gone) is retried as a conversion into a fresh volume. Not when the path
 * is taken by something this job did not make (EEXIST, not a regular file): that is the client's 409.
 */
function fallsBackToConverting(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code !== 'EEXIST' && !(error instanceof VolumeNotRegularFileError);
}

/** A complete golden base to clone (held until the clone is made), or why the volume is converted into. */
async function cloneSource(
  bases: BaseStore,
  volumes: VolumeBackend,
  ctx: JobContext,
): Promise<{ lease?: ReturnType<BaseStore['acquire']>; reason?: string }> {
  const { info } = need(ctx.inspected);
  const support = await bases.support();
  if (!support.enabled || !volumes.cloneFrom)
    return { reason: `${support.reason ?? 'no clones'}; converting` };
  if (info.virtualSize > ctx.request.volume_size_gb * GIB)
    return { reason: 'the image is larger than the volume' };
  // Streaming (stream-write.ts): the image is cold and still downloading, its sha256 not known yet,
  // so there is no base of it to clone; one is kept from the fresh volume once the write is done.
  if (!ctx.fetched) return { reason: 'the image is written while it downloads (and a base of it kept)' };
  const lease = bases.acquire(ctx.fetched.image.sha256, info.virtualSize);
  return lease ? { lease } : { reason: 'no golden base of this image yet: converting (and keeping one)' };
}

function cloned(volume: WritableVolume, rawSha256: string, seconds: number): StageEvent & JobEvent {
  return jobLog('volume cloned from a golden base', {
    ...describe(volume),
    clone: true,
    base: volume.clonedFrom,
    base_raw_sha256: rawSha256,
    seconds,
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
