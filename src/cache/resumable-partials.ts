import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@nestjs/common';
import type { ImageRef } from '../storage/image-source';
import type { CacheLayout } from './cache-layout';
import type { PartialDownloads } from './image-store';

/** What a partial download's `.json` beside it records: the object version its bytes belong to. */
export interface PartialMeta {
  url: string;
  etag?: string;
  size?: number;
  /**
   * The download was complete and verified, and moved into the store under this digest, not yet
   * indexed (the index row waits until its jobs are done: durable-index.ts). A crash before the row
   * is written finds the file a stray; start-up moves it back here for its resumed job.
   */
  placed?: string;
}

/** How a download starts: on the bytes a crash left (`resume`), or from zero (and why, when bytes were there). */
export interface ResumePlan {
  resume: boolean;
  bytesOnDisk: number;
  restartReason?: string;
  /** The digest the bytes had when they were verified whole before the crash: a re-hash must give it. */
  sha256?: string;
}

const SUFFIX = '.part';
const META = '.json';

/** Whether a tmp/ name is a resumable partial download or its record (kept across a crash). */
export function isResumableName(name: string, names: ReadonlySet<string>): boolean {
  if (name.startsWith('resume-') && name.endsWith(SUFFIX)) return names.has(name + META);
  if (name.startsWith('resume-') && name.endsWith(SUFFIX + META))
    return names.has(name.slice(0, -META.length));
  return false;
}

/**
 * The rule for a partial download found after a restart: its bytes go on only when they belong to
 * the version the source serves now (same ETag) and are not more than the object holds. Pure.
 */
export function planResume(meta: PartialMeta | undefined, bytesOnDisk: number, ref: ImageRef): ResumePlan {
  if (bytesOnDisk === 0) return { resume: false, bytesOnDisk };
  const restart = (restartReason: string): ResumePlan => ({ resume: false, bytesOnDisk, restartReason });
  if (!meta || meta.url !== ref.url) return restart('the partial download has no record of its source');
  if (!ref.etag || !meta.etag) return restart('the source gives no ETag to guard a range request');
  if (meta.etag !== ref.etag) {
    return restart(`the source changed during the outage (ETag ${meta.etag}, now ${ref.etag})`);
  }
  if (ref.size !== undefined && bytesOnDisk > ref.size) {
    return restart(`the partial download has ${bytesOnDisk} bytes, more than the object's ${ref.size}`);
  }
  return { resume: true, bytesOnDisk, ...(meta.placed ? { sha256: meta.placed } : {}) };
}

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Partial downloads that survive a crash: each URL downloads into `tmp/resume-<hash of url>.part`
 * with a `.json` record of the object version, so the next start finds the bytes and goes on
 * from them. A path is used by one transfer at a time (a second concurrent transfer of the same
 * URL gets a throw-away name). Partials kept from before a restart that no resumed job claims are
 * removed (`adopt`, `discard`), so tmp/ does not fill up with orphans.
 */
export class ResumablePartials implements PartialDownloads {
  private readonly inUse = new Set<string>();
  private readonly tmpDir: string;

  constructor(
    private readonly layout: CacheLayout,
    /** RESUME_INTERRUPTED: off, every transfer gets a throw-away name and start-up removes them all. */
    private readonly enabled: boolean,
    private readonly logger: Logger,
  ) {
    this.tmpDir = layout.tmpDir;
  }

  /** What start-up keeps in tmp/ (store-recovery.ts): the partial downloads a crash interrupted. */
  readonly keep = (name: string, names: ReadonlySet<string>): boolean =>
    this.enabled && isResumableName(name, names);

  pathFor(url: string): string {
    return join(
      this.tmpDir,
      `resume-${createHash('sha256').update(url).digest('hex').slice(0, 40)}${SUFFIX}`,
    );
  }

  /** A partial path for a new transfer of `url`; give it back with `remove` or `done`. */
  claim(url: string): string {
    if (!this.enabled) return this.layout.partialDownload();
    const path = this.pathFor(url);
    if (this.inUse.has(path)) return this.layout.partialDownload();
    this.inUse.add(path);
    return path;
  }

  /**
   * Decides whether the transfer goes on from the bytes in `partial`, clears them when it cannot,
   * and records the version the bytes will belong to (before any byte is written).
   */
  async prepare(partial: string, ref: ImageRef): Promise<ResumePlan> {
    if (!this.inUse.has(partial)) return { resume: false, bytesOnDisk: 0 };
    const bytesOnDisk = await stat(partial).then(
      (s) => s.size,
      () => 0,
    );
    const plan = planResume(await readMeta(partial), bytesOnDisk, ref);
    if (!plan.resume) await rm(partial, { force: true });
    const meta: PartialMeta = { url: ref.url, etag: ref.etag, size: ref.size };
    // O_NOFOLLOW, as for the partial file itself (downloader.ts): never written through a link.
    const flag = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
    await writeFile(partial + META, JSON.stringify(meta), { mode: 0o600, flag });
    return plan;
  }

  /** The transfer is over: its file was renamed into place or is to go. */
  async remove(partial: string): Promise<void> {
    await rm(partial, { force: true });
    await this.done(partial);
  }

  /** The transfer's file was renamed into place: only its record goes. */
  async done(partial: string): Promise<void> {
    await rm(partial + META, { force: true });
    this.inUse.delete(partial);
  }

  /**
   * The transfer's file was renamed into the store as `sha256`, verified, not yet indexed (its row
   * waits for its jobs: durable-index.ts): its record stays, saying so, until the job ends (`discard`),
   * so a crash meanwhile (while the job inspects and converts) does not cost the download.
   */
  async placed(partial: string, sha256: string): Promise<void> {
    this.inUse.delete(partial);
    if (!this.enabled || !SHA256.test(sha256)) return this.done(partial);
    const meta = await readMeta(partial);
    if (!meta) return;
    const flag = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
    await writeFile(partial + META, JSON.stringify({ ...meta, placed: sha256 }), { mode: 0o600, flag });
  }

  /**
   * Start-up, before tmp/ is cleared: a verified download a crash caught between the store and the
   * index (`placed`) is moved back to its partial path, whole, for its job to resume from (re-hashed,
   * it must give the same digest). The store would otherwise remove it as a stray.
   */
  readonly restore = async (indexed: ReadonlySet<string>): Promise<string[]> => {
    if (!this.enabled) return [];
    const { storeDir } = this.layout;
    const names = await readdir(this.tmpDir).catch(() => [] as string[]);
    const restored: string[] = [];
    for (const name of names) {
      if (!name.startsWith('resume-') || !name.endsWith(SUFFIX + META)) continue;
      const partialName = name.slice(0, -META.length);
      const partial = join(this.tmpDir, partialName);
      const sha256 = (await readMeta(partial))?.placed;
      // An indexed image is no stray; bytes beside the record belong to a later transfer.
      if (!sha256 || !SHA256.test(sha256) || indexed.has(sha256) || names.includes(partialName)) continue;
      const moved = await rename(join(storeDir, sha256), partial).then(
        () => true,
        () => false,
      );
      if (moved) restored.push(sha256);
    }
    if (restored.length > 0) {
      this.logger.warn({
        files: restored,
        msg: `kept ${restored.length} verified download(s) a crash caught before they were indexed, for their jobs to resume`,
      });
    }
    return restored;
  };

  async adopt(urls: string[]): Promise<void> {
    const wanted = new Set(urls.map((url) => this.pathFor(url)));
    // Read after store recovery (the cache module starts first); a missing tmp/ has nothing to adopt.
    const orphans = (await readdir(this.tmpDir).catch(() => [] as string[]))
      .filter((name) => name.startsWith('resume-') && name.endsWith(SUFFIX))
      .map((name) => join(this.tmpDir, name))
      .filter((path) => !wanted.has(path) && !this.inUse.has(path));
    for (const path of orphans) {
      await rm(path, { force: true });
      await rm(path + META, { force: true });
    }
    if (orphans.length > 0) {
      this.logger.warn({
        files: orphans,
        msg: `removed ${orphans.length} partial download(s) no job resumes`,
      });
    }
  }

  async discard(url: string): Promise<void> {
    const path = this.pathFor(url);
    if (this.inUse.has(path)) return;
    await rm(path, { force: true });
    await rm(path + META, { force: true });
  }
}

async function readMeta(partial: string): Promise<PartialMeta | undefined> {
  try {
    return JSON.parse(await readFile(partial + META, 'utf8')) as PartialMeta;
  } catch {
    return undefined;
  }
}
