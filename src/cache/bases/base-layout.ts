import { join, resolve } from 'node:path';

/**
 * Where golden bases live: VOLUME_DIR/.lvp-bases, on the volumes' own filesystem (a reflink never
 * crosses filesystems). The directory exists only while it holds a base or one being made: on a
 * filesystem without reflinks it is never created. Per base, named by the image's sha256 and
 * virtual size (`<hex>-<bytes>`):
 *   <key>.partial   being made (reflinked from a fresh volume, then compared with the image)
 *   <key>.raw       the base, complete once
 *   <key>.json      its record (raw-content digest, sizes, times) is written: only then is it cloned
 */
export class BaseLayout {
  readonly dir: string;

  constructor(volumeDir: string) {
    this.dir = join(resolve(volumeDir), '.lvp-bases');
  }

  static key(sha256: string, virtualSize: number): string {
    return `${sha256}-${virtualSize}`;
  }

  partial(key: string): string {
    return join(this.dir, `${key}.partial`);
  }

  base(key: string): string {
    return join(this.dir, `${key}.raw`);
  }

  record(key: string): string {
    return join(this.dir, `${key}.json`);
  }
}

/** What start-up keeps of the bases directory, and what it removes. */
export interface BaseSweep {
  /** Keys of complete bases (a .raw and its .json) whose image is cached. */
  keep: string[];
  /** Every other name: partial bases, a .raw without its record or the reverse, bases of images no longer cached, strangers. */
  remove: string[];
}

const KEY = /^([0-9a-f]{64})-(\d+)\.(raw|json)$/;

/** Pure: sorts the names found in the bases directory. A base must belong to a cached image. */
export function sweepBases(names: string[], isCached: (sha256: string) => boolean): BaseSweep {
  const present = new Set(names);
  const keep: string[] = [];
  const remove: string[] = [];
  for (const name of names) {
    const match = KEY.exec(name);
    if (!match) {
      remove.push(name);
      continue;
    }
    const key = `${match[1]}-${match[2]}`;
    const complete = present.has(`${key}.raw`) && present.has(`${key}.json`);
    if (complete && isCached(match[1])) {
      if (match[3] === 'raw') keep.push(key);
    } else remove.push(name);
  }
  return { keep, remove };
}

/** A base as eviction sees it. */
export interface BaseCandidate {
  key: string;
  size: number;
  lastUsedAt: string;
}

/**
 * Pure: which bases to remove so the rest fit `maxBytes` / `maxCount`, least recently used first.
 * Stops at the first one in use (a clone is being made from it): eviction waits for it rather
 * than removing a newer base in its place.
 */
export function chooseBaseEvictions(
  bases: BaseCandidate[],
  limits: { maxBytes: number; maxCount: number },
  inUse: (key: string) => boolean,
): BaseCandidate[] {
  let bytes = bases.reduce((sum, b) => sum + b.size, 0);
  let count = bases.length;
  const evict: BaseCandidate[] = [];
  for (const base of [...bases].sort((a, b) => a.lastUsedAt.localeCompare(b.lastUsedAt))) {
    if ((bytes <= limits.maxBytes && count <= limits.maxCount) || inUse(base.key)) break;
    evict.push(base);
    bytes -= base.size;
    count -= 1;
  }
  return evict;
}
