import { concat, defer, map, mergeMap, of, type Observable } from 'rxjs';
import type { FetchEvent, ImageStore } from '../../cache/image-store';
import type { JobEvent } from '../job-event';
import type { JobContext } from './job-context';

/** checking_cache, then downloading unless the store already holds the image. */
export function fetchStage(ctx: JobContext, store: ImageStore): Observable<JobEvent> {
  return concat(
    of<JobEvent>({ type: 'stage', stage: 'checking_cache' }),
    defer(() => store.obtain(ctx.ref!, ctx)).pipe(mergeMap((event) => toJobEvents(ctx, event))),
  );
}

function toJobEvents(ctx: JobContext, event: FetchEvent): Observable<JobEvent> {
  switch (event.kind) {
    case 'checked': {
      const events: JobEvent[] = [{ type: 'fact', facts: { cacheHit: event.cacheHit } }];
      if (!event.cacheHit) events.push({ type: 'stage', stage: 'downloading' });
      return of(...events);
    }
    case 'progress':
      return of<JobEvent>({
        type: 'progress',
        bytesProcessed: event.bytes,
        bytesTotal: event.total ?? null,
        fraction: event.total ? event.bytes / event.total : null,
      });
    case 'ready':
      return of(event.image).pipe(
        map((image): JobEvent => {
          ctx.image = image;
          return { type: 'fact', facts: { imagePath: image.path, imageSha256: image.sha256 } };
        }),
      );
  }
}
