import { Inject, Injectable } from '@nestjs/common';
import { concat, type Observable } from 'rxjs';
import { IMAGE_STORE, type ImageStore } from '../../cache/image-store';
import { Settings } from '../../config/settings';
import { QemuImg } from '../../convert/qemu-img';
import { VOLUME_BACKEND, type VolumeBackend } from '../../lvm/volume-backend';
import { IMAGE_SOURCES, type ImageSource } from '../../storage/image-source';
import type { JobEvent } from '../job-event';
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
  ) {}

  run(ctx: JobContext): Observable<JobEvent> {
    return concat(
      resolveStage(ctx, this.sources), //                       resolve
      fetchStage(ctx, this.store), //                            checking_cache, downloading
      inspectStage(ctx, this.qemuImg, this.settings.inspectTimeout), // inspecting
      volumeStage(ctx, this.volumes), //                         creating_volume
      convertStage(ctx, this.qemuImg), //                        converting
      finalizeStage(ctx, this.volumes), //                       finalizing
    );
  }

  /** After a failure or cancel: remove only what this job created, and let go of the image. */
  async rollback(ctx: JobContext): Promise<void> {
    if (ctx.createdVolume) await this.volumes.remove(ctx.request.volume_name);
    await this.release(ctx);
  }

  async release(ctx: JobContext): Promise<void> {
    await ctx.image?.release();
  }
}
