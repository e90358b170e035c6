import { basename } from 'node:path';
import { ChecksumUnavailableError, SourceError } from '../../common/errors';
import type { ImageSettings } from '../../config/groups/image.settings';
import { parseRequestChecksum, parseSidecar } from '../../storage/checksum';
import type { ImageRef, ImageSource } from '../../storage/image-source';
import type { JobRequest } from '../job.model';
import { asyncStage, type JobContext, type PipelineStage, type Resolved } from './job-context';

export interface ResolveDeps {
  sources: ImageSource[];
  /** settings.images */
  images: Pick<ImageSettings, 'requireChecksum'>;
}

/**
 * resolve: image_url → ImageRef (size, etag) from the source that serves it, and the sha256 the
 * image must have: the request's `checksum`, else a `<image>.sha256` sidecar next to it.
 */
export function makeResolveStage({ sources, images }: ResolveDeps): PipelineStage<JobRequest> {
  const expectation = async (
    ctx: JobContext<JobRequest>,
    source: ImageSource,
    ref: ImageRef,
    url: URL,
    signal: AbortSignal,
  ): Promise<Resolved['expected']> => {
    if (ctx.request.checksum) {
      const parsed = parseRequestChecksum(ctx.request.checksum);
      if ('error' in parsed) throw new ChecksumUnavailableError(parsed.error);
      return { sha256: parsed.sha256, origin: 'the request' };
    }
    const sidecar = await source.sidecar(ref, signal);
    if (sidecar !== undefined) {
      const parsed = parseSidecar(sidecar, basename(decodeURIComponent(url.pathname)));
      if ('error' in parsed) {
        throw new ChecksumUnavailableError(
          `the checksum sidecar ${url.href}.sha256 is malformed: ${parsed.error}`,
        );
      }
      return { sha256: parsed.sha256, origin: `${url.href}.sha256` };
    }
    if (images.requireChecksum) {
      throw new ChecksumUnavailableError(
        `no expected sha256 for ${url.href}: send "checksum": "sha256:<hex>" or publish ${basename(url.pathname)}.sha256 ` +
          'next to the image (REQUIRE_CHECKSUM is on)',
      );
    }
    return undefined;
  };

  return (ctx) =>
    asyncStage(ctx, async (emit, signal) => {
      emit({ type: 'stage', stage: 'resolve' });
      const url = new URL(ctx.request.image_url);
      const source = sources.find((s) => s.handles(url));
      if (!source) throw new SourceError(`no image source serves ${url.protocol} URLs`);
      const ref = await source.resolve(url, signal);
      ctx.resolved = { ref, expected: await expectation(ctx, source, ref, url, signal) };
    });
}
