import { defer, EMPTY, finalize, merge, Observable, of, ReplaySubject, share } from 'rxjs';
import { ChecksumMismatchError, SourceError } from '../common/errors';
import { Arrivals } from '../convert/nbd/arrivals';
import { readRange } from '../storage/read-body';
import { Settings } from '../config/settings';
import type { ImageSource } from '../storage/image-source';
import { download, Downloaded, retryDelay } from './downloader';
import type { GrowingFile, ImageRequest } from './image-store';
import type { ResumablePartials } from './resumable-partials';

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
  /** The transfer goes on from bytes a crash left in tmp/ (re-hashed, then a range request). */
  | { kind: 'resumed'; fromBytes: number }
  /** Bytes a crash left could not be used: the transfer starts from zero, for this reason. */
  | { kind: 'restarted'; reason: string; bytesOnDisk: number }
  | { kind: 'growing'; file: GrowingFile }
  | { kind: 'stored'; stored: Stored; seconds: number };

export interface SharedDownloadsDeps {
  settings: Settings;
  sources: ImageSource[];
  /** The paths in tmp/ partial downloads are written to (kept across a crash, to resume). */
  partials: ResumablePartials;
  /** Moves the verified file into place, pinned for the jobs waiting for it. */
  place: (partial: string, downloaded: Downloaded, url: string) => Promise<Stored>;
  /** Every job sharing the download has taken the file: the download's own pin goes. */
  onTaken: (stored: Stored) => void;
  /** Bytes as they arrive (for metrics). */
  onReceived: (bytes: number) => void;
}

/**
 * How often a download tells its jobs how far it got. Every write to the partial file advances
 * the growing file's readers at once; the jobs' progress (folded into their state, published at
 * most 5 times a second, saved once a second) needs no more than this: one event per HTTP chunk
 * was 16 000 or more per GiB, each a new job state, which kept the garbage collector busy.
 */
const PROGRESS_INTERVAL_MS = 50;

/** A gate that opens at most once per `ms` milliseconds, or whenever it is forced. */
export function everyMs(ms: number, now: () => number = Date.now): (force?: boolean) => boolean {
  let last = -Infinity;
  return (force = false) => {
    const at = now();
    if (!force && at - last < ms) return false;
    last = at;
    return true;
  };
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
    const { settings, sources, partials } = this.deps;
    return new Observable<DownloadEvent>((subscriber) => {
      const abort = new AbortController();
      const partial = partials.claim(ref.url);
      const source = sources.find((s) => s.handles(new URL(ref.url)));
      const arrivals = ref.size !== undefined && ref.size > 0 ? new Arrivals(ref.size) : undefined;
      if (arrivals) {
        // A reader that needs bytes far ahead of the download may fetch them apart (a range GET
        // of this version); the export compares them with the download's bytes when they arrive.
        const fetchRange = async (offset: number, length: number, signal: AbortSignal) =>
          readRange(await source!.readRequest(ref, offset), offset, length, signal);
        this.growing.set(key, { path: partial, arrivals, fetchRange: source ? fetchRange : undefined });
      }
      const stopGrowing = (error?: Error) => {
        if (this.growing.get(key)?.arrivals === arrivals) this.growing.delete(key);
        if (error) arrivals?.fail(error);
        else arrivals?.finish();
      };
      let settled = false;
      const started = Date.now();
      const progressDue = everyMs(PROGRESS_INTERVAL_MS);
      const transfer = (resumeFromDisk: boolean) =>
        download({
          source: source!,
          ref,
          path: partial,
          attempts: settings.retry.attempts,
          resumeFromDisk,
          delayBeforeRetry: (retry) => retryDelay(settings.retry.backoffMs, retry),
          signal: abort.signal,
          onBytes: (bytes, total) => {
            if (arrivals && bytes < arrivals.bytes) {
              // The source sent the object again from its start: bytes a reader already took are
              // being replaced, so no reader may go on.
              arrivals.fail(new SourceError(`${ref.url} restarted from its first byte while it was read`));
            }
            arrivals?.advance(bytes);
            if (progressDue(bytes === total)) subscriber.next({ kind: 'progress', bytes, total });
          },
          onReceived: this.deps.onReceived,
          nice: settings.jobs.nice,
          // Told to every job sharing this download; each logs it with its own fields.
          onRetry: (retry, error, resumeAt) =>
            subscriber.next({ kind: 'retry', retry, error: error.message, resumeAt }),
        });
      const work = (async () => {
        if (!source) throw new SourceError(`no image source serves ${ref.url}`);
        const plan = await partials.prepare(partial, ref);
        if (plan.restartReason) {
          subscriber.next({ kind: 'restarted', reason: plan.restartReason, bytesOnDisk: plan.bytesOnDisk });
        }
        if (plan.resume) subscriber.next({ kind: 'resumed', fromBytes: plan.bytesOnDisk });
        let result = await transfer(plan.resume);
        // The digest the bytes must have: the one asked for, or the one they had when verified whole.
        const wanted = expected?.sha256 ?? plan.sha256;
        if (wanted && result.sha256 !== wanted && plan.resume) {
          // The bytes kept across the crash were damaged on disk (the re-hash read them as they
          // are): fetch the whole image once more rather than fail a job the source can serve.
          subscriber.next({
            kind: 'restarted',
            reason: `the resumed download hashed to ${result.sha256}, not the ${expected ? 'expected' : 'verified'} ${wanted}: the bytes kept across the restart were damaged`,
            bytesOnDisk: plan.bytesOnDisk,
          });
          result = await transfer(false);
        }
        if (expected && result.sha256 !== expected.sha256) {
          throw new ChecksumMismatchError(ref.url, expected.sha256, result.sha256, expected.origin);
        }
        const stored = await this.deps.place(partial, result, ref.url);
        // A cached file is indexed only after its jobs: until then its record says where it went.
        await (stored.cached ? partials.placed(partial, stored.sha256) : partials.done(partial));
        return stored;
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
          await partials.remove(partial);
          subscriber.error(error);
        },
      );
      return () => {
        if (settled) return;
        stopGrowing(new SourceError(`the download of ${ref.url} was given up`));
        abort.abort();
        const cleanup = work.catch(() => undefined).finally(() => partials.remove(partial));
        this.cleanups.add(cleanup);
        void cleanup.finally(() => this.cleanups.delete(cleanup));
      };
    });
  }
}
