import { concat, defer, mergeMap, of, type Observable } from 'rxjs';
import type { FetchEvent, ImageStore } from '../../cache/image-store';
import { jobLog, type JobEvent } from '../job-event';
import { throughput } from '../job-log';
import type { JobRequest } from '../job.model';
import type { JobContext } from './job-context';

/** checking_cache, then downloading unless the cache already holds the image. */
export function fetchStage(ctx: JobContext<JobRequest>, store: ImageStore): Observable<JobEvent> {
  return concat(
    of<JobEvent>({ type: 'stage', stage: 'checking_cache' }),
    defer(() => store.obtain({ ref: ctx.ref!, expected: ctx.expected }, ctx)).pipe(
      mergeMap((event) => of(...toJobEvents(ctx, event))),
    ),
  );
}

function toJobEvents(ctx: JobContext<JobRequest>, event: FetchEvent): JobEvent[] {
  switch (event.kind) {
    case 'checked':
      return event.cacheHit
        ? [{ type: 'fact', facts: { cacheHit: true } }, jobLog('cache hit', expectation(ctx))]
        : [
            { type: 'fact', facts: { cacheHit: false } },
            jobLog('cache miss: downloading', { ...expectation(ctx), size: ctx.ref!.size ?? null }),
            { type: 'stage', stage: 'downloading' },
          ];
    case 'retry':
      return [
        jobLog(
          'download attempt failed; retrying',
          { retry: event.retry, resume_at: event.resumeAt, error: event.error },
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
      ctx.image = event.image;
      return [
        ...(event.download
          ? [
              jobLog('download done', {
                bytes: event.download.bytes,
                seconds: event.download.seconds,
                bytes_per_second: throughput(event.download.bytes, event.download.seconds),
                sha256: event.image.sha256,
                verified: ctx.expected !== undefined,
              }),
            ]
          : []),
        {
          type: 'fact',
          facts: {
            imagePath: event.image.path,
            imageSha256: event.image.sha256,
            checksumVerified: ctx.expected !== undefined,
          },
        },
      ];
  }
}

/** What the log says about the digest the image must have. */
function expectation(ctx: JobContext<JobRequest>): Record<string, unknown> {
  return ctx.expected
    ? { expected_sha256: ctx.expected.sha256, checksum_from: ctx.expected.origin }
    : { expected_sha256: null };
}
