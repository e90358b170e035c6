/** What the cache counts for /metrics and GET /api/v1/cache (since the daemon started). */
export class CacheCounters {
  hits = 0;
  misses = 0;
  evictions = 0;
  /** Bytes received from image sources, including bytes of downloads later abandoned. */
  bytesDownloaded = 0;
}
