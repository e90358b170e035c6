import { rm } from 'node:fs/promises';
import { defer, EMPTY, finalize, merge, Observable, of, ReplaySubject, share } from 'rxjs';
import { ChecksumMismatchError, SourceError } from '../common/errors';
import { Arrivals } from '../convert/nbd/arrivals';
import { Settings } from '../config/settings';
import type { ImageSource } from '../storage/image-source';
import { download, Downloaded, retryDelay } from './downloader';
import type { GrowingFile, ImageRequest } from './image-store';

/** What a finished download left: a file in the store, or (too big to keep) a file used once. */
export interface Stored {
  path: string;
  sha256: string;
  size: number;
  cached: boolean;
}

export type DownloadEvent =
  | { kind: 'progress'; bytes: number; total?: number }
  | { kind: 'retry'; retry: number; error: string; resumeAt: number }
  | { kind: 'growing'; file: GrowingFile }
  | { kind: 'stored'; stored: Stored; seconds: number };

export interface SharedDownloadsDeps {
  settings: Settings;
  sources: ImageSource[];
  /** A new path in tmp/ for a partial download. */
  partialPath: () => string;
  /** Moves the verified file into place, pinned for the jobs waiting for it. */
  place: (partial: string, downloaded: Downloaded, url: string) => Promise<Stored>;
  /** Every job sharing the download has taken the file: the download's own pin goes. */
  onTaken: (stored: Stored) => void;
  /** Bytes as they arrive (for metrics). */
  onReceived: (bytes: number) => void;
}

/** Which requests share one transfer: the same expected digest, or the same source version. */
export function downloadKey({ ref, expected }: ImageRequest): string {
  return expected
    ? `sha256:${expected.sha256}`
    : `source:${ref.url}|${ref.etag ?? ''}|${ref.size ?? ''}|${ref.lastModified ?? ''}`;
}

/**
 * Single flight: every job that wants the same image shares one transfer and sees its progress.
 * A transfer no job wants any more is aborted and its partial file removed.
 */
export class SharedDownloads {
  private readonly inflight = new Map<string, Observable<DownloadEvent>>();
  /** The partial file of each running transfer of known length, for jobs that read it as it grows. */
  private readonly growing = new Map<string, GrowingFile>();
  /** Partial files of abandoned transfers being removed. */
  private readonly cleanups = new Set<Promise<unknown>>();

  constructor(private readonly deps: SharedDownloadsDeps) {}

  of(request: ImageRequest): Observable<DownloadEvent> {
    const key = downloadKey(request);
    let shared = this.inflight.get(key);
    if (!shared) {
      shared = this.downloadOnce(request, key).pipe(
        finalize(() => this.inflight.delete(key)),
        share({
          connector: () => new ReplaySubject<DownloadEvent>(1),
          resetOnError: true,
          resetOnComplete: true,
          resetOnRefCountZero: true,
        }),
      );
      this.inflight.set(key, shared);
    }
    // Subscribing starts the transfer (or joins it); then each job, late joiners too, learns of
    // the growing file (the shared replay keeps only the latest event).
    const events = shared;
    return merge(
      events,
      defer(() => {
        const file = this.growing.get(key);
        return file ? of<DownloadEvent>({ kind: 'growing', file }) : EMPTY;
      }),
    );
  }

  /** Settles once the partial files of abandoned transfers are removed (for a job's rollback). */
  cleanedUp(): Promise<unknown> {
    return Promise.allSettled([...this.cleanups]);
  }

  private downloadOnce({ ref, expected }: ImageRequest, key: string): Observable<DownloadEvent> {
    const { settings, sources } = this.deps;
    return new Observable<DownloadEvent>((subscriber) => {
      const abort = new AbortController();
      const partial = this.deps.partialPath();
      const arrivals = ref.size !== undefined && ref.size > 0 ? new Arrivals(ref.size) : undefined;
      if (arrivals) this.growing.set(key, { path: partial, arrivals });
      const stopGrowing = (error?: Error) => {
        if (this.growing.get(key)?.arrivals === arrivals) this.growing.delete(key);
        if (error) arrivals?.fail(error);
        else arrivals?.finish();
      };
      const source = sources.find((s) => s.handles(new URL(ref.url)));
      let settled = false;
      const started = Date.now();
      const work = (async () => {
        if (!source) throw new SourceError(`no image source serves ${ref.url}`);
        const result = await download({
          source,
          ref,
          path: partial,
          attempts: settings.retry.attempts,
          delayBeforeRetry: (retry) => retryDelay(settings.retry.backoffMs, retry),
          signal: abort.signal,
          onBytes: (bytes, total) => {
            if (arrivals && bytes < arrivals.bytes) {
              // The source sent the object again from its start: bytes a reader already took are
              // being replaced, so no reader may go on.
              arrivals.fail(new SourceError(`${ref.url} restarted from its first byte while it was read`));
            }
            arrivals?.advance(bytes);
            subscriber.next({ kind: 'progress', bytes, total });
          },
          onReceived: this.deps.onReceived,
          // Told to every job sharing this download; each logs it with its own fields.
          onRetry: (retry, error, resumeAt) =>
            subscriber.next({ kind: 'retry', retry, error: error.message, resumeAt }),
        });
        if (expected && result.sha256 !== expected.sha256) {
          throw new ChecksumMismatchError(ref.url, expected.sha256, result.sha256, expected.origin);
        }
        return this.deps.place(partial, result, ref.url);
      })();
      work.then(
        (stored) => {
          settled = true;
          stopGrowing();
          subscriber.next({ kind: 'stored', stored, seconds: (Date.now() - started) / 1000 });
          this.deps.onTaken(stored);
          subscriber.complete();
        },
        async (error) => {
          settled = true;
          stopGrowing(error as Error);
          await rm(partial, { force: true });
          subscriber.error(error);
        },
      );
      return () => {
        if (settled) return;
        stopGrowing(new SourceError(`the download of ${ref.url} was given up`));
        abort.abort();
        const cleanup = work.catch(() => undefined).finally(() => rm(partial, { force: true }));
        this.cleanups.add(cleanup);
        void cleanup.finally(() => this.cleanups.delete(cleanup));
      };
    });
  }
}
