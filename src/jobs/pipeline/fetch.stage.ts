import { concat, defer, mergeMap, of, type Observable } from 'rxjs';
import type { FetchEvent, ImageStore } from '../../cache/image-store';
import type { JobEvent } from '../job-event';
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
        ? [{ type: 'fact', facts: { cacheHit: true } }]
        : [
            { type: 'fact', facts: { cacheHit: false } },
            { type: 'stage', stage: 'downloading' },
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
