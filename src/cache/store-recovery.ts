import { readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { preparePrivateDir } from '../common/private-dir';
import type { Logger } from '@nestjs/common';
import type { CacheLayout } from './cache-layout';
import type { CacheRepository } from './cache.repository';

/** How the store directory and the index disagree, as start-up finds them. */
export interface StoreMismatch {
  /** Indexed images whose file is missing: their rows go. */
  missing: string[];
  /** Files no indexed image owns (its row is missing, or is being removed now): they go. */
  strays: string[];
  /** Indexed images that have an expanded copy on disk. */
  expanded: string[];
}

/**
 * Compares the names in the store directory with the indexed digests. An unpacked or expanded
 * copy belongs to its image: kept with it, a stray without it.
 */
export function reconcileStore(files: string[], indexed: string[]): StoreMismatch {
  const left = new Set(files);
  const result: StoreMismatch = { missing: [], strays: [], expanded: [] };
  for (const sha256 of indexed) {
    if (!left.delete(sha256)) {
      result.missing.push(sha256);
      continue;
    }
    left.delete(`${sha256}.unpacked`);
    if (left.delete(`${sha256}.expanded`)) result.expanded.push(sha256);
  }
  result.strays = [...left];
  return result;
}

/**
 * Start-up: partial downloads and partial unpacked/expanded copies (all in tmp/) are removed,
 * except those `keep` names (a download a crash interrupted, to resume); the index and the files
 * are made to agree. Returns the indexed images that have an expanded copy.
 */
export async function recoverStore(
  layout: CacheLayout,
  repository: CacheRepository,
  logger: Logger,
  keep: (name: string, names: ReadonlySet<string>) => boolean = () => false,
  /** Moves files out of the store (back into tmp/) before strays are removed; given the indexed digests. */
  restore: (indexed: ReadonlySet<string>) => Promise<unknown> = async () => undefined,
): Promise<string[]> {
  const { storeDir, tmpDir } = layout;
  // Real, private directories: start-up empties tmp/ and removes strays in sha256/, so a link
  // there would delete the files of whatever directory it names.
  preparePrivateDir(dirname(storeDir), 'CACHE_DIR', true);
  preparePrivateDir(storeDir, 'the cache store');
  preparePrivateDir(tmpDir, 'the cache tmp directory');
  await restore(new Set(repository.all().map((entry) => entry.sha256)));
  const names = await readdir(tmpDir);
  const present = new Set(names);
  const partial = names.filter((name) => !keep(name, present));
  await Promise.all(partial.map((name) => rm(join(tmpDir, name), { force: true, recursive: true })));
  if (partial.length > 0) {
    logger.warn({
      files: partial,
      msg: `removed ${partial.length} partial download(s) or cache copies left by an earlier run`,
    });
  }
  const indexed = repository.all().map((entry) => entry.sha256);
  const { missing, strays, expanded } = reconcileStore(await readdir(storeDir), indexed);
  for (const sha256 of missing) {
    // Its unpacked or expanded copy, if any, is removed below with the other strays.
    repository.remove(sha256);
    logger.warn({ sha256, msg: 'cache index row had no file; removed the row' });
  }
  for (const stray of strays) {
    await rm(join(storeDir, stray), { force: true, recursive: true });
    logger.warn({ file: stray, msg: 'cache file had no index row; removed the file' });
  }
  return expanded;
}
