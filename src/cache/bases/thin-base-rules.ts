import { createHash } from 'node:crypto';
import type { LvInfo } from '../../volumes/lvm-cli';

/**
 * Names and tags of the golden base thin LVs of the `lvm-thin` backend (thin-base-storage.ts). A base is
 * `lvp-base-<hex16>`, a prefix volume-name.ts refuses for user volumes, so no request can name
 * (reuse, overwrite or remove) a base. What the base is lives in its LVM tags, so that start-up
 * knows it without any file:
 *   lvp-base                  every base (with the daemon's owner tag)
 *   lvp-base-partial          being made: removed at start-up, never cloned
 *   lvp-base-image=<sha256>   the image it holds
 *   lvp-base-vsize=<bytes>    the image's virtual size
 *   lvp-base-raw=<sha256>     digest of its raw content (the first vsize bytes): set when complete
 *   lvp-base-made=<epoch ms>  when it was made (the LRU order after a restart)
 */
export const BASE_LV_PREFIX = 'lvp-base-';
export const BASE_TAG = 'lvp-base';
export const PARTIAL_TAG = 'lvp-base-partial';
const IMAGE = 'lvp-base-image=';
const VSIZE = 'lvp-base-vsize=';
const RAW = 'lvp-base-raw=';
const MADE = 'lvp-base-made=';

/** Pure: the base LV of an image (sha256) at a virtual size. */
export function thinBaseName(sha256: string, virtualSize: number): string {
  const digest = createHash('sha256').update(`${sha256}-${virtualSize}`).digest('hex');
  return `${BASE_LV_PREFIX}${digest.slice(0, 16)}`;
}

/** The tags a base is created with (it is partial until `completeTags`). */
export function partialTags(sha256: string, virtualSize: number, madeAt: number): string[] {
  return [BASE_TAG, PARTIAL_TAG, `${IMAGE}${sha256}`, `${VSIZE}${virtualSize}`, `${MADE}${madeAt}`];
}

/** The tag change that completes a base: partial goes, its raw-content digest comes. */
export function completeTags(rawSha256: string): { add: string[]; del: string[] } {
  return { add: [`${RAW}${rawSha256}`], del: [PARTIAL_TAG] };
}

/** A base LV as its name and tags describe it. */
export type ThinBaseLv =
  | {
      state: 'complete';
      name: string;
      sha256: string;
      virtualSize: number;
      rawSha256: string;
      madeAt: number;
    }
  | { state: 'partial'; name: string; why: string };

const tagValue = (tags: string[], prefix: string) =>
  tags.find((t) => t.startsWith(prefix))?.slice(prefix.length);

/**
 * Pure: reads a base from an LV; undefined when the LV is no base (not ours, or not named like
 * one). A base whose tags are incomplete or disagree with its name counts as partial.
 */
export function parseThinBase(lv: Pick<LvInfo, 'name' | 'tags'>, ownerTag: string): ThinBaseLv | undefined {
  if (!lv.name.startsWith(BASE_LV_PREFIX) || !lv.tags.includes(ownerTag)) return undefined;
  if (!lv.tags.includes(BASE_TAG)) return undefined;
  const partial = (why: string): ThinBaseLv => ({ state: 'partial', name: lv.name, why });
  if (lv.tags.includes(PARTIAL_TAG)) return partial('it was being made');
  const sha256 = tagValue(lv.tags, IMAGE);
  const virtualSize = Number(tagValue(lv.tags, VSIZE));
  const rawSha256 = tagValue(lv.tags, RAW);
  const madeAt = Number(tagValue(lv.tags, MADE));
  if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256) || !rawSha256 || !Number.isSafeInteger(virtualSize)) {
    return partial('its tags are incomplete');
  }
  if (thinBaseName(sha256, virtualSize) !== lv.name) return partial('its name does not match its tags');
  return { state: 'complete', name: lv.name, sha256, virtualSize, rawSha256, madeAt: madeAt || 0 };
}

/**
 * Pure: whether the thin pool has room for one more base. A base pins the image's blocks once the
 * volume it was taken from is overwritten or removed, and a thin pool that fills up stops every
 * thin LV in it; so no base is made once data or metadata use reaches BASE_POOL_MAX_PERCENT.
 * Returns why not, or undefined when there is room.
 */
export function poolRoomProblem(
  pool: { dataPercent?: number; metadataPercent?: number },
  maxPercent: number,
  poolName: string,
): string | undefined {
  const data = pool.dataPercent ?? 0;
  const metadata = pool.metadataPercent ?? 0;
  const over: string[] = [];
  if (data >= maxPercent) over.push(`data ${data}%`);
  if (metadata >= maxPercent) over.push(`metadata ${metadata}%`);
  if (over.length === 0) return undefined;
  return (
    `thin pool ${poolName} is nearly full (${over.join(', ')}; BASE_POOL_MAX_PERCENT=${maxPercent}): ` +
    'no base is kept; extend the pool (lvextend) or remove volumes to keep bases again'
  );
}

/** Pure: the pool data a base pins, from its size and its share of mapped blocks. */
export function pinnedBytes(lv: Pick<LvInfo, 'sizeBytes' | 'dataPercent'>): number {
  return Math.round((lv.sizeBytes * (lv.dataPercent ?? 0)) / 100);
}
