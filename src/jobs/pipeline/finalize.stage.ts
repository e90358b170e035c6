import type { Virsh } from '../../lvm/virsh';
import type { VolumeBackend } from '../../lvm/volume-backend';
import { jobLog } from '../job-event';
import { asyncStage, JobContext } from './job-context';

/** finalizing: nothing of a reused volume's old content may survive beyond the image. */
export function finalizeStage(ctx: JobContext, volumes: VolumeBackend, virsh: Virsh) {
  return asyncStage(ctx, async (emit) => {
    emit({ type: 'stage', stage: 'finalizing' });
    await volumes.clearTail(ctx.volume!, ctx.info!.virtualSize);
    const refresh = await virsh.refreshPool();
    if (refresh) emit(jobLog('libvirt pool refresh failed (the volume is fine)', refresh, 'warn'));
    emit({
      type: 'progress',
      bytesProcessed: ctx.info!.virtualSize,
      bytesTotal: ctx.info!.virtualSize,
      fraction: 1,
    });
  });
}
