import { messageOf } from '../common/errors';
import { constants } from 'node:fs';
import { access, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A directory check that does not answer in this time (a hung NFS mount) counts as failed. */
const DIRECTORY_TIMEOUT_MS = 2000;

export interface DirectoryState {
  path: string;
  free_bytes: number;
  min_free_bytes: number;
}

export class DirectoryProblem extends Error {
  constructor(
    message: string,
    readonly details: Partial<DirectoryState>,
  ) {
    super(message);
  }
}

/**
 * Whether the daemon can write in `path` and its filesystem keeps at least `minFreeBytes` free
 * for it (statfs f_bavail: what a non-root writer gets). With `probeFile`, a small file is
 * really written and removed (the only test that no permission, mount option or quota refuses);
 * without, access(W_OK) is asked, which still says EROFS on a read-only filesystem.
 */
export async function checkDirectory(
  path: string,
  minFreeBytes: number,
  probeFile?: string,
): Promise<DirectoryState> {
  const work = (async () => {
    let free: number;
    try {
      const fs = await statfs(path);
      free = fs.bavail * fs.bsize;
    } catch (error) {
      throw new DirectoryProblem(`cannot read ${path}: ${messageOf(error)}`, { path });
    }
    const state = { path, free_bytes: free, min_free_bytes: minFreeBytes };
    try {
      if (probeFile) {
        const probe = join(path, probeFile);
        await writeFile(probe, `${process.pid}\n`, { mode: 0o600 });
        await rm(probe, { force: true });
      } else {
        await access(path, constants.W_OK);
      }
    } catch (error) {
      throw new DirectoryProblem(`cannot write in ${path}: ${messageOf(error)}`, state);
    }
    if (free < minFreeBytes) {
      throw new DirectoryProblem(
        `only ${free} bytes free in ${path}, below READY_MIN_FREE_BYTES=${minFreeBytes}`,
        state,
      );
    }
    return state;
  })();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new DirectoryProblem(`${path} did not answer within ${DIRECTORY_TIMEOUT_MS} ms`, { path })),
      DIRECTORY_TIMEOUT_MS,
    );
  });
  // When the timeout wins, the stalled work's eventual failure has no one left to hear it.
  work.catch(() => undefined);
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
