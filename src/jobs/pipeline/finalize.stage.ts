import type { Virsh } from '../../volumes/virsh';
import type { VolumeBackend } from '../../volumes/volume-backend';
import { jobLog } from '../job-event';
import { asyncStage, need, type PipelineStage } from './job-context';

export interface FinalizeDeps {
  volumes: VolumeBackend;
  virsh: Virsh;
}

/** finalizing: nothing of a reused volume's old content may survive beyond the image. */
export function makeFinalizeStage({ volumes, virsh }: FinalizeDeps): PipelineStage {
  return (ctx) =>
    asyncStage(ctx, async (emit) => {
      emit({ type: 'stage', stage: 'finalizing' });
      const { virtualSize } = need(ctx.inspected).info;
      await volumes.clearTail(need(ctx.volume), virtualSize);
      const refresh = await virsh.refreshPool();
      if (refresh) emit(jobLog('libvirt pool refresh failed (the volume is fine)', refresh, 'warn'));
      emit({ type: 'progress', bytesProcessed: virtualSize, bytesTotal: virtualSize, fraction: 1 });
    });
}
