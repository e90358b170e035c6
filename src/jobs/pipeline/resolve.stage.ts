import { SourceError } from '../../common/errors';
import type { ImageSource } from '../../storage/image-source';
import { asyncStage, JobContext } from './job-context';

/** resolve: image_url → ImageRef (size, etag) from the source that serves it. */
export function resolveStage(ctx: JobContext, sources: ImageSource[]) {
  return asyncStage(ctx, async (emit, signal) => {
    emit({ type: 'stage', stage: 'resolve' });
    const url = new URL(ctx.request.image_url);
    const source = sources.find((s) => s.handles(url));
    if (!source) throw new SourceError(`no image source serves ${url.protocol} URLs`);
    ctx.ref = await source.resolve(url, signal);
  });
}
