/** One cached image as eviction sees it. */
export interface EvictionCandidate {
  sha256: string;
  size: number;
  lastUsedAt: string;
}

export interface CacheLimits {
  maxBytes: number;
  maxEntries: number;
}

/**
 * Which entries to evict so the cache fits its limits: least recently used first, never one in
 * use. May return less than needed when what is in use alone exceeds the limits.
 */
export function chooseEvictions(
  entries: EvictionCandidate[],
  limits: CacheLimits,
  inUse: (sha256: string) => boolean,
): EvictionCandidate[] {
  let bytes = entries.reduce((sum, e) => sum + e.size, 0);
  let count = entries.length;
  const evict: EvictionCandidate[] = [];
  const oldestFirst = [...entries].sort((a, b) => a.lastUsedAt.localeCompare(b.lastUsedAt));
  for (const entry of oldestFirst) {
    if (bytes <= limits.maxBytes && count <= limits.maxEntries) break;
    if (inUse(entry.sha256)) continue;
    evict.push(entry);
    bytes -= entry.size;
    count -= 1;
  }
  return evict;
}
