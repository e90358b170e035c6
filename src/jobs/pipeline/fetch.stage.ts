import { concat, defer, mergeMap, of } from 'rxjs';
import type { FetchEvent, ImageStore, LocalImage } from '../../cache/image-store';
import { jobLog, type JobEvent } from '../job-event';
import { throughput } from '../job-log';
import type { JobRequest } from '../job.model';
import { need, type Fetched, type JobContext, type PipelineStage, type Resolved } from './job-context';

export interface FetchDeps {
  store: ImageStore;
}

/** checking_cache, then downloading unless the cache already holds the image. */
export function makeFetchStage({ store }: FetchDeps): PipelineStage<JobRequest> {
  /** The image, with the cache's ways of reading it bound to this job. */
  const fetched = (ctx: JobContext<JobRequest>, image: LocalImage): Fetched => ({
    image,
    path: image.expandedPath ?? image.path,
    unpacked: (wrapper, maxBytes, signal) => store.unpacked(image, wrapper, maxBytes, ctx, signal),
  });

  return (ctx) =>
    concat(
      of<JobEvent>({ type: 'stage', stage: 'checking_cache' }),
      defer(() => {
        const resolved = need(ctx.resolved);
        return store.obtain(resolved, ctx).pipe(
          mergeMap((event) => {
            if (event.kind === 'ready') ctx.fetched = fetched(ctx, event.image);
            if (event.kind === 'growing') ctx.growing = event.file;
            return of(...toJobEvents(resolved, event));
          }),
        );
      }),
    );
}

function toJobEvents({ ref, expected }: Resolved, event: FetchEvent): JobEvent[] {
  switch (event.kind) {
    case 'checked':
      return event.cacheHit
        ? [{ type: 'fact', facts: { cacheHit: true } }, jobLog('cache hit', expectation(expected))]
        : [
            { type: 'fact', facts: { cacheHit: false } },
            jobLog('cache miss: downloading', { ...expectation(expected), size: ref.size ?? null }),
            { type: 'stage', stage: 'downloading' },
          ];
    case 'growing':
      return []; // for the streaming stage, on the context
    case 'retry':
      return [
        jobLog(
          'download attempt failed; retrying',
          { retry: event.retry, resume_at: event.resumeAt, error: event.error },
          'warn',
        ),
      ];
    case 'resumed':
      return [
        { type: 'fact', facts: { resumedFromBytes: event.fromBytes } },
        jobLog('download resumed after the restart', { resume_at: event.fromBytes, size: ref.size ?? null }),
      ];
    case 'restarted':
      return [
        { type: 'fact', facts: { resumedFromBytes: 0 } },
        jobLog(
          'download cannot resume: starting over',
          { reason: event.reason, bytes_on_disk: event.bytesOnDisk },
          'warn',
        ),
      ];
    case 'progress':
      return [
        {
          type: 'progress',
          bytesProcessed: event.bytes,
          bytesTotal: event.total ?? null,
          fraction: event.total ? event.bytes / event.total : null,
        },
      ];
    case 'ready':
      return [
        ...(event.download
          ? [
              jobLog('download done', {
                bytes: event.download.bytes,
                seconds: event.download.seconds,
                bytes_per_second: throughput(event.download.bytes, event.download.seconds),
                sha256: event.image.sha256,
                verified: expected !== undefined,
              }),
            ]
          : []),
        {
          type: 'fact',
          facts: {
            imagePath: event.image.path,
            imageSha256: event.image.sha256,
            checksumVerified: expected !== undefined,
          },
        },
      ];
  }
}

/** What the log says about the digest the image must have. */
function expectation(expected: Resolved['expected']): Record<string, unknown> {
  return expected
    ? { expected_sha256: expected.sha256, checksum_from: expected.origin }
    : { expected_sha256: null };
}
