import { basename } from 'node:path';
import { ChecksumUnavailableError, SourceError } from '../../common/errors';
import { parseRequestChecksum, parseSidecar } from '../../storage/checksum';
import type { ImageSource } from '../../storage/image-source';
import type { JobRequest } from '../job.model';
import { asyncStage, JobContext } from './job-context';

/**
 * resolve: image_url → ImageRef (size, etag) from the source that serves it, and the sha256 the
 * image must have: the request's `checksum`, else a `<image>.sha256` sidecar next to it.
 */
export function resolveStage(ctx: JobContext<JobRequest>, sources: ImageSource[], requireChecksum: boolean) {
  return asyncStage(ctx, async (emit, signal) => {
    emit({ type: 'stage', stage: 'resolve' });
    const url = new URL(ctx.request.image_url);
    const source = sources.find((s) => s.handles(url));
    if (!source) throw new SourceError(`no image source serves ${url.protocol} URLs`);
    ctx.ref = await source.resolve(url, signal);

    if (ctx.request.checksum) {
      const parsed = parseRequestChecksum(ctx.request.checksum);
      if ('error' in parsed) throw new ChecksumUnavailableError(parsed.error);
      ctx.expected = { sha256: parsed.sha256, origin: 'the request' };
      return;
    }
    const sidecar = await source.sidecar(ctx.ref, signal);
    if (sidecar !== undefined) {
      const parsed = parseSidecar(sidecar, basename(decodeURIComponent(url.pathname)));
      if ('error' in parsed) {
        throw new ChecksumUnavailableError(
          `the checksum sidecar ${url.href}.sha256 is malformed: ${parsed.error}`,
        );
      }
      ctx.expected = { sha256: parsed.sha256, origin: `${url.href}.sha256` };
      return;
    }
    if (requireChecksum) {
      throw new ChecksumUnavailableError(
        `no expected sha256 for ${url.href}: send "checksum": "sha256:<hex>" or publish ${basename(url.pathname)}.sha256 ` +
          'next to the image (REQUIRE_CHECKSUM is on)',
      );
    }
  });
}
