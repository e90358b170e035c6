import { mkdir, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { Observable } from 'rxjs';
import { Settings } from '../config/settings';
import { SourceError } from '../common/errors';
import type { JobScope } from '../common/job-scope';
import { IMAGE_SOURCES, ImageRef, ImageSource } from '../storage/image-source';
import { streamToFile } from './download';
import { FetchEvent, ImageStore } from './image-store';

/**
 * The first ImageStore: downloads each job's image into CACHE_DIR/tmp and deletes it when the job
 * ends. It never hits; the content-addressed cache replaces it behind the same port.
 */
@Injectable()
export class DownloadStore implements ImageStore {
  private readonly tmpDir: string;

  constructor(
    settings: Settings,
    @Inject(IMAGE_SOURCES) private readonly sources: ImageSource[],
  ) {
    this.tmpDir = join(resolve(settings.cacheDir), 'tmp');
  }

  obtain(ref: ImageRef, job: JobScope): Observable<FetchEvent> {
    return new Observable<FetchEvent>((subscriber) => {
      const abort = new AbortController();
      const path = join(this.tmpDir, `${job.id}.img`);
      const source = this.sourceFor(ref);
      subscriber.next({ kind: 'checked', cacheHit: false });
      let finished = false;
      const work = (async () => {
        await mkdir(this.tmpDir, { recursive: true });
        const body = await source.open(ref, 0, abort.signal);
        const result = await streamToFile(
          body,
          path,
          (bytes) => subscriber.next({ kind: 'progress', bytes, total: ref.size }),
          abort.signal,
        );
        if (ref.size !== undefined && result.bytes !== ref.size) {
          throw new SourceError(`${ref.url} ended after ${result.bytes} of ${ref.size} bytes`);
        }
        return result;
      })();
      work.then(
        (result) => {
          finished = true;
          subscriber.next({
            kind: 'ready',
            image: {
              path,
              sha256: result.sha256,
              sizeBytes: result.bytes,
              cacheHit: false,
              release: () => rm(path, { force: true }),
            },
          });
          subscriber.complete();
        },
        async (error) => {
          finished = true;
          await rm(path, { force: true });
          subscriber.error(error);
        },
      );
      return () => {
        if (!finished) {
          abort.abort();
          job.track(work.catch(() => undefined).finally(() => rm(path, { force: true })));
        }
      };
    });
  }

  async sweep(): Promise<number> {
    const names = await readdir(this.tmpDir).catch(() => [] as string[]);
    await Promise.all(names.map((name) => rm(join(this.tmpDir, name), { force: true, recursive: true })));
    return names.length;
  }

  private sourceFor(ref: ImageRef): ImageSource {
    const url = new URL(ref.url);
    const source = this.sources.find((s) => s.handles(url));
    if (!source) throw new SourceError(`no image source serves ${url.protocol} URLs`);
    return source;
  }
}
