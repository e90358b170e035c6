import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Where mkfs.xfs is looked for (xfsprogs; scripts/install-system-packages.sh installs it). */
function findMkfsXfs(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    try {
      execFileSync(join(dir, 'mkfs.xfs'), ['-V'], { stdio: 'pipe' });
      return join(dir, 'mkfs.xfs');
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why the reflink specs cannot run here, or undefined when they can (mkfs.xfs present). */
export function xfsSkipReason(): string | undefined {
  return findMkfsXfs()
    ? undefined
    : 'mkfs.xfs is missing (install xfsprogs: scripts/install-system-packages.sh does)';
}

/**
 * An XFS filesystem (reflink=1, mkfs.xfs's default) on a loop device over a sparse file in `dir`,
 * mounted at `<dir>/mnt`: the volume directory of the reflink-clone specs. `cleanup` unmounts it,
 * detaches the loop device and removes the backing file; it runs in `after` whatever happened.
 */
export function xfsLoop(dir: string, sizeMiB = 1024): { mountpoint: string; cleanup: () => void } {
  const mkfs = findMkfsXfs();
  if (!mkfs) throw new Error(xfsSkipReason());
  const backing = join(dir, 'xfs.img');
  const mountpoint = join(dir, 'mnt');
  mkdirSync(mountpoint, { recursive: true });
  execFileSync('truncate', ['-s', `${sizeMiB}M`, backing]);
  execFileSync(mkfs, ['-q', '-m', 'reflink=1', backing], { stdio: 'pipe' });
  const loop = execFileSync('losetup', ['--find', '--show', backing]).toString().trim();
  let mounted = false;
  try {
    execFileSync('mount', [loop, mountpoint], { stdio: 'pipe' });
    mounted = true;
  } finally {
    if (!mounted) execFileSync('losetup', ['-d', loop]);
  }
  return {
    mountpoint,
    cleanup: () => {
      try {
        execFileSync('umount', [mountpoint], { stdio: 'pipe' });
      } finally {
        execFileSync('losetup', ['-d', loop], { stdio: 'pipe' });
        rmSync(backing, { force: true });
      }
    },
  };
}
