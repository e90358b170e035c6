import { Inject, Injectable } from '@nestjs/common';
import { concat, of, type Observable } from 'rxjs';
import { IMAGE_STORE, type ImageStore } from '../../cache/image-store';
import { Settings } from '../../config/settings';
import { QemuImg } from '../../convert/qemu-img';
import { Virsh } from '../../lvm/virsh';
import { VOLUME_BACKEND, type VolumeBackend } from '../../lvm/volume-backend';
import { IMAGE_SOURCES, type ImageSource } from '../../storage/image-source';
import type { JobEvent } from '../job-event';
import { isProvision, type JobRequest, type PrefetchRequest } from '../job.model';
import { convertStage } from './convert.stage';
import { fetchStage } from './fetch.stage';
import { finalizeStage } from './finalize.stage';
import { inspectStage } from './inspect.stage';
import type { JobContext } from './job-context';
import { resolveStage } from './resolve.stage';
import { volumeStage } from './volume.stage';

/**
 * One provision job as an Observable: the stages run in order, their emissions are the job's
 * progress, and unsubscribing cancels whatever stage is running.
 */
@Injectable()
export class ProvisionPipeline {
  constructor(
    private readonly settings: Settings,
    private readonly qemuImg: QemuImg,
    @Inject(IMAGE_SOURCES) private readonly sources: ImageSource[],
    @Inject(IMAGE_STORE) private readonly store: ImageStore,
    @Inject(VOLUME_BACKEND) private readonly volumes: VolumeBackend,
    private readonly virsh: Virsh,
  ) {}

  run(ctx: JobContext<JobRequest>): Observable<JobEvent> {
    // One context object either way; the guard tells which request it carries.
    return isProvision(ctx.request)
      ? this.provision(ctx as JobContext)
      : this.prefetch(ctx as JobContext<PrefetchRequest>);
  }

  private provision(ctx: JobContext): Observable<JobEvent> {
    return concat(
      resolveStage(ctx, this.sources, this.settings.requireChecksum), // resolve
      fetchStage(ctx, this.store), //                                     checking_cache, downloading
      inspectStage(ctx, this.qemuImg, this.store, {
        timeoutSeconds: this.settings.inspectTimeout,
        cpuSeconds: this.settings.inspectCpuSeconds,
        addressSpaceBytes: this.settings.inspectMemoryBytes,
      }), //  inspecting
      volumeStage(ctx, this.volumes), //                                  creating_volume
      convertStage(ctx, this.qemuImg, this.volumes), //                   converting
      finalizeStage(ctx, this.volumes, this.virsh), //                                finalizing
    );
  }

  /** A prefetch only fills the cache. */
  private prefetch(ctx: JobContext<PrefetchRequest>): Observable<JobEvent> {
    return concat(
      resolveStage(ctx, this.sources, this.settings.requireChecksum), // resolve
      fetchStage(ctx, this.store), //                                     checking_cache, downloading
      of<JobEvent>({ type: 'stage', stage: 'finalizing' }), //            finalizing
    );
  }

  /** After a failure or cancel: remove only what this job created, and let go of the image. */
  async rollback(ctx: JobContext<JobRequest>): Promise<void> {
    if (ctx.createdVolume && isProvision(ctx.request)) await this.volumes.remove(ctx.request.volume_name);
    await this.release(ctx);
  }

  async release(ctx: JobContext<JobRequest>): Promise<void> {
    await ctx.image?.release();
  }
}
