import { defer, EMPTY } from 'rxjs';
import type { BaseStore } from '../../cache/base-store';
import { jobLog } from '../job-event';
import { asyncStage, need, type PipelineStage } from './job-context';

export interface KeepBaseDeps {
  bases: BaseStore;
}

/**
 * After converting into a fresh volume: keep a golden base of the image, a reflink copy of that
 * volume (milliseconds, no second conversion), verified against the image before any clone is
 * made from it. Runs while the job still holds the image, so the image cannot be evicted under
 * the comparison. A base that cannot be made costs the job nothing: it says why and completes.
 * Nothing is said where clones are off or impossible: the "volume created" line said so already.
 */
export function makeKeepBaseStage({ bases }: KeepBaseDeps): PipelineStage {
  return (ctx) =>
    defer(() => {
      const volume = need(ctx.volume);
      if (!ctx.createdVolume || volume.clonedFrom) return EMPTY;
      return asyncStage(ctx, async (emit, signal) => {
        if (!(await bases.support()).enabled) return;
        const { info, format, readPath } = need(ctx.inspected);
        const outcome = await bases.keep(
          {
            sha256: need(ctx.fetched).image.sha256,
            virtualSize: info.virtualSize,
            volumePath: volume.path,
            volumeName: volume.name,
            imagePath: readPath,
            format,
          },
          signal,
        );
        if (outcome.kept) {
          const { path, rawSha256 } = outcome.base;
          emit(jobLog('golden base kept', { base: path, raw_sha256: rawSha256, seconds: outcome.seconds }));
        } else {
          emit(jobLog('no golden base kept', { reason: outcome.reason }));
        }
      });
    });
}
