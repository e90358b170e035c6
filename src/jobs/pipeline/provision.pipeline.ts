import { Inject, Injectable } from '@nestjs/common';
import { concat, defer, EMPTY, mergeMap, of, type Observable } from 'rxjs';
import { BASE_STORE, type BaseStore } from '../../cache/base-store';
import { IMAGE_STORE, type ImageStore } from '../../cache/image-store';
import { Settings } from '../../config/settings';
import { InspectionMemo } from '../../convert/inspection-memo';
import { QemuImg } from '../../convert/qemu-img';
import { Virsh } from '../../volumes/virsh';
import { VOLUME_BACKEND, type VolumeBackend } from '../../volumes/volume-backend';
import { IMAGE_SOURCES, type ImageSource } from '../../storage/image-source';
import type { JobEvent } from '../job-event';
import { isProvision, type JobRequest, type PrefetchRequest } from '../job.model';
import { makeConvertStage } from './convert.stage';
import { makeFetchStage } from './fetch.stage';
import { makeFinalizeStage } from './finalize.stage';
import { makeInspectStage } from './inspect.stage';
import { makeKeepBaseStage } from './keep-base.stage';
import { need, type JobContext, type PipelineStage, type StageEvent } from './job-context';
import { makeResolveStage } from './resolve.stage';
import { makeStreamStage } from './stream.stage';
import { makeVolumeStage } from './volume.stage';

/**
 * One provision job as an Observable: the stages run in order, their emissions are the job's
 * progress, and unsubscribing cancels whatever stage is running.
 */
@Injectable()
export class ProvisionPipeline {
  // Each stage is made once, from its own dependencies.
  private readonly resolve: PipelineStage<JobRequest>;
  private readonly fetch: PipelineStage<JobRequest>;
  private readonly fetchOrStream: PipelineStage;
  private readonly inspect: PipelineStage;
  private readonly prepareVolume: PipelineStage;
  private readonly write: PipelineStage;
  private readonly keepBase: PipelineStage;
  private readonly finalize: PipelineStage;

  constructor(
    settings: Settings,
    qemuImg: QemuImg,
    memo: InspectionMemo,
    @Inject(IMAGE_SOURCES) sources: ImageSource[],
    @Inject(IMAGE_STORE) private readonly store: ImageStore,
    @Inject(VOLUME_BACKEND) private readonly volumes: VolumeBackend,
    virsh: Virsh,
    @Inject(BASE_STORE) bases: BaseStore,
  ) {
    this.resolve = makeResolveStage({ sources, images: settings.images }); //  resolve
    this.fetch = makeFetchStage({ store }); //                   checking_cache, downloading
    this.inspect = makeInspectStage({ qemuImg, memo, inspect: settings.inspect }); // inspecting
    this.prepareVolume = makeVolumeStage({ volumes, bases }); // creating_volume, cloning
    this.write = makeConvertStage({ qemuImg, volumes }); //               converting
    this.keepBase = makeKeepBaseStage({ bases }); //             (converting: a golden base for later clones)
    this.finalize = makeFinalizeStage({ volumes, virsh }); //    finalizing
    // checking_cache, downloading, streaming: a cold image written while it downloads (STREAM_CONVERT)
    this.fetchOrStream = makeStreamStage({
      qemuImg,
      volumes,
      inspect: settings.inspect,
      memo,
      mode: settings.convert.stream,
      fetch: this.fetch,
      prepareVolume: this.prepareVolume,
    });
  }

  run(ctx: JobContext<JobRequest>): Observable<JobEvent> {
    // One context object either way; the guard tells which request it carries.
    const events = isProvision(ctx.request)
      ? this.provision(ctx as JobContext)
      : this.prefetch(ctx as JobContext<PrefetchRequest>);
    return events.pipe(mergeMap((event) => this.route(ctx, event)));
  }

  private provision(ctx: JobContext): Observable<StageEvent> {
    const { resolve, fetchOrStream, inspect, prepareVolume, write, keepBase, finalize } = this;
    // A streamed image was inspected and written while it downloaded (a cold job, so there was no
    // golden base to clone): a base of the fresh volume is kept for later clones, then finalizing.
    const unlessStreamed = defer(() =>
      ctx.streamed ? keepBase(ctx) : concat(inspect(ctx), prepareVolume(ctx), write(ctx), keepBase(ctx)),
    );
    return concat(resolve(ctx), fetchOrStream(ctx), unlessStreamed, finalize(ctx));
  }

  /** A prefetch only fills the cache. */
  private prefetch(ctx: JobContext<PrefetchRequest>): Observable<StageEvent> {
    const { resolve, fetch } = this;
    return concat(resolve(ctx), fetch(ctx), of<JobEvent>({ type: 'stage', stage: 'finalizing' }));
  }

  /** The job's events go on to the runner; what the cache should learn goes to the cache. */
  private route(ctx: JobContext<JobRequest>, event: StageEvent): Observable<JobEvent> {
    if (event.type !== 'compressed_image') return of(event);
    this.store.expandLater(need(ctx.fetched).image, event.readPath, event.estimatedBytes);
    return EMPTY;
  }

  /** After a failure or cancel: remove only what this job created, and let go of the image. */
  async rollback(ctx: JobContext<JobRequest>): Promise<void> {
    if (ctx.createdVolume && isProvision(ctx.request)) await this.volumes.remove(ctx.request.volume_name);
    await this.release(ctx);
  }

  async release(ctx: JobContext<JobRequest>): Promise<void> {
    await ctx.fetched?.image.release();
    // A download a crash interrupted that this job did not take up (a cache hit, a failure first).
    await this.store.partials.discard(ctx.request.image_url);
  }
}
