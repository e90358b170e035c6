import { lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';

/** What lstat/stat found at a directory path, reduced to what the rule needs. */
export interface FoundDir {
  symlink: boolean;
  directory: boolean;
  uid: number;
  mode: number;
}

/**
 * The rule for a directory this daemon writes files into (CACHE_DIR and its sha256/ and tmp/,
 * the directory of DB_PATH): a real directory, owned by the daemon's user, that nobody else can
 * write. Anyone else who can write there can put a symlink where the daemon is about to create,
 * remove or rename a file (start-up clears tmp/ and strays in sha256/: through a symlinked tmp/ that
 * deleted files elsewhere). Returns what is wrong, in words for the operator, or undefined.
 */
export function privateDirProblem(found: FoundDir, ourUid: number): string | undefined {
  if (found.symlink) return 'a symbolic link';
  if (!found.directory) return 'not a directory';
  if (found.uid !== ourUid) return `owned by uid ${found.uid}, not by this daemon's user (uid ${ourUid})`;
  if ((found.mode & 0o022) !== 0) {
    return `writable by group or others (mode 0${(found.mode & 0o7777).toString(8)})`;
  }
  return undefined;
}

/**
 * Creates `path` with mode 0700 if it is missing, then checks it by the rule above and throws a
 * start-up error that says what to fix. `configured`: a path the operator set (CACHE_DIR, the
 * directory of DB_PATH) may itself be a link the operator made, and is checked where it leads;
 * the daemon's own subdirectories never may be.
 */
export function preparePrivateDir(path: string, what: string, configured = false): void {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
  } catch (error) {
    // Something that is not a directory is in the way: the check below names it.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const stats: Stats = configured ? statSync(path) : lstatSync(path);
  const problem = privateDirProblem(
    { symlink: stats.isSymbolicLink(), directory: stats.isDirectory(), uid: stats.uid, mode: stats.mode },
    process.getuid?.() ?? stats.uid,
  );
  if (problem) {
    throw new Error(
      `${what} ${path} is ${problem}; the daemon creates and removes files there and needs a directory ` +
        `only it can write: make it a real directory owned by the daemon's user with mode 0700 ` +
        `(e.g. chown $(id -un) ${path} && chmod 700 ${path}), or remove it and let the daemon create it`,
    );
  }
}
