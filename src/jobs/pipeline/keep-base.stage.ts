import { defer, EMPTY } from 'rxjs';
import type { BaseStore } from '../../cache/base-store';
import { jobLog } from '../job-event';
import { jobLogFields } from '../job-log';
import { asyncStage, need, type PipelineStage } from './job-context';

export interface KeepBaseDeps {
  bases: BaseStore;
}

/**
 * After converting into a fresh volume: keep a golden base of the image, a copy-on-write copy of
 * that volume (a reflink, a thin snapshot: milliseconds, no second conversion) taken while the job
 * still holds the volume. The copy is verified against the image after the job, in the background
 * (`golden base kept` or `no golden base kept` in the log, with this job's id); no clone is made
 * from it before. The job holds the image for that verification, so it is not evicted under it.
 * A base that cannot be made costs the job nothing: it says why and completes. Nothing is said
 * where clones are off or impossible: the "volume created" line said so already.
 */
export function makeKeepBaseStage({ bases }: KeepBaseDeps): PipelineStage {
  return (ctx) =>
    defer(() => {
      const volume = need(ctx.volume);
      if (!ctx.createdVolume || volume.clonedFrom) return EMPTY;
      return asyncStage(ctx, async (emit, signal) => {
        if (!(await bases.support()).enabled) return;
        const { image } = need(ctx.fetched);
        const { info, format, readPath } = need(ctx.inspected);
        const letGo = image.hold();
        try {
          const outcome = await bases.keep(
            {
              sha256: image.sha256,
              virtualSize: info.virtualSize,
              volumePath: volume.path,
              volumeName: volume.name,
              imagePath: readPath,
              format,
              logFields: jobLogFields(ctx),
            },
            signal,
          );
          if (outcome.kept) {
            void outcome.verified.finally(letGo);
            emit(
              jobLog('golden base copied: verifying it after the job', {
                base: outcome.path,
                seconds: outcome.seconds,
              }),
            );
          } else {
            await letGo();
            emit(jobLog('no golden base kept', { reason: outcome.reason }));
          }
        } catch (error) {
          await letGo();
          throw error;
        }
      });
    });
}
