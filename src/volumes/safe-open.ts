import { constants, type Stats } from 'node:fs';
import { lstat, open, readlink, type FileHandle } from 'node:fs/promises';

/** Which file a path named when it was checked: a later open must land on the same one. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

/** What lstat/fstat found at a path, reduced to what the rule below needs. */
export interface FoundFile {
  kind: 'file' | 'symlink' | 'directory' | 'fifo' | 'socket' | 'block device' | 'character device';
  nlink: number;
  /** For a symlink: where it points (shown to the operator). */
  linkTarget?: string;
}

/**
 * The rule for a file volume's path: only a regular file with no other name qualifies. Returns
 * what is wrong with it, in words for the operator, or undefined when it may be written.
 * A symlink is refused wherever it points (inside VOLUME_DIR too): following one is exactly how a
 * job came to write a file outside VOLUME_DIR. A second hard link is refused for the same reason:
 * it is another name for the file, possibly outside VOLUME_DIR.
 */
export function volumeFileProblem(found: FoundFile): string | undefined {
  switch (found.kind) {
    case 'file':
      return found.nlink > 1
        ? `a regular file with ${found.nlink} hard links (other names for the same file, possibly outside VOLUME_DIR)`
        : undefined;
    case 'symlink':
      return found.linkTarget === undefined
        ? 'a symbolic link'
        : `a symbolic link (to ${JSON.stringify(found.linkTarget)})`;
    case 'fifo':
      return 'a fifo (named pipe)';
    default:
      return `a ${found.kind}`;
  }
}

export function kindOf(stats: Stats): FoundFile['kind'] {
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  if (stats.isBlockDevice()) return 'block device';
  return 'character device';
}

/** Thrown when a path is not a file that may be written; `problem` says what it is instead. */
export class UnsafeFileError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path} is ${problem}`);
  }
}

/**
 * Looks at `path` itself, never following a link: undefined when nothing is there, the file's
 * identity and size when it is a writable regular file, UnsafeFileError otherwise.
 */
export async function checkRegularFile(path: string): Promise<(FileIdentity & { size: number }) | undefined> {
  let stats: Stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const found: FoundFile = { kind: kindOf(stats), nlink: stats.nlink };
  if (found.kind === 'symlink') found.linkTarget = await readlink(path).catch(() => undefined);
  const problem = volumeFileProblem(found);
  if (problem) throw new UnsafeFileError(path, problem);
  return { dev: stats.dev, ino: stats.ino, size: stats.size };
}

/**
 * Flags for opening a checked file for writing. O_NOFOLLOW: a symlink put in its place after the
 * check fails the open (ELOOP) instead of being followed. O_NOCTTY: a terminal device put there
 * never becomes our controlling terminal. O_NONBLOCK: a fifo put there fails (ENXIO) or opens at
 * once instead of hanging the job until someone reads it; it has no effect on regular files.
 */
export const NO_FOLLOW_WRITE =
  constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NOCTTY | constants.O_NONBLOCK;

/**
 * Opens `path` for writing without following a link, then verifies the descriptor itself (fstat):
 * a regular file with one name and, when `expected` is given, the very file that was checked.
 * Whatever was swapped in between the check and the open is refused here, before a byte is
 * written; from then on everything goes through this descriptor, never the name again.
 */
export async function openVerified(path: string, expected?: FileIdentity): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, NO_FOLLOW_WRITE);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ELOOP: the last component is a symlink. ENXIO: a fifo with no reader. ENOENT: it is gone.
    if (code === 'ELOOP' || code === 'ENXIO' || code === 'ENOENT' || code === 'EISDIR') {
      const now = await checkRegularFile(path).catch((e: unknown) => e);
      if (now instanceof UnsafeFileError) throw now;
      throw new UnsafeFileError(path, `no longer the file that was checked (${code} on open)`);
    }
    throw error;
  }
  try {
    const stats = await handle.stat();
    const problem = volumeFileProblem({ kind: kindOf(stats), nlink: stats.nlink });
    if (problem) throw new UnsafeFileError(path, problem);
    if (expected && (stats.dev !== expected.dev || stats.ino !== expected.ino)) {
      throw new UnsafeFileError(path, 'no longer the file that was checked (it was replaced meanwhile)');
    }
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}
