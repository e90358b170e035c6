import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A clean Debian bookworm (debootstrap --variant=minbase) to install the .deb into, in a chroot
 * with /proc and /dev mounted. Needs root, debootstrap, and deb.debian.org.
 *
 * What is slow is cached under `cacheDir`, with versioned names so that a change of recipe makes
 * a new entry instead of reusing a stale one:
 *   bookworm-minbase-v1.tar          the debootstrapped tree (made once: ~30 s; unpacked per run: ~5 s)
 *   nodejs-repo-<version>/           the host's nodejs repacked (dpkg-repack) into a flat apt
 *                                    repository: the stand-in for NodeSource's repository
 *   apt-archives/                    the .debs apt downloaded, bind-mounted into the chroot
 *                                    (apt still checks them against the current indexes)
 */
export const CHROOT_CACHE_RECIPE = 'bookworm-minbase-v1';
const MIRROR = 'http://deb.debian.org/debian';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Runs a program (never a shell); throws with its output's tail when it fails. */
export function mustRun(file: string, args: readonly string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(file, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options });
  if (result.error) throw new Error(`${file} could not be started: ${result.error.message}`);
  if (result.status !== 0) {
    const tail = `${String(result.stdout ?? '')}\n${String(result.stderr ?? '')}`
      .trim()
      .split('\n')
      .slice(-25);
    throw new Error(
      `${file} ${args.join(' ')} exited with ${result.status ?? result.signal}:\n${tail.join('\n')}`,
    );
  }
  return String(result.stdout ?? '');
}

/** The debootstrapped tree as a tarball in the cache; made when missing (atomically: tmp + rename). */
export function baseTarball(cacheDir: string): string {
  const tarball = join(cacheDir, `${CHROOT_CACHE_RECIPE}.tar`);
  if (existsSync(tarball)) return tarball;
  mkdirSync(cacheDir, { recursive: true });
  const scratch = mkdtempSync(join(cacheDir, 'debootstrap-'));
  try {
    const root = join(scratch, 'root');
    mustRun('debootstrap', ['--variant=minbase', 'bookworm', root, MIRROR]);
    mustRun('tar', ['--numeric-owner', '-C', root, '-cf', join(scratch, 'root.tar'), '.']);
    renameSync(join(scratch, 'root.tar'), tarball);
  } finally {
    // The tree debootstrap made has no mounts left in it (debootstrap unmounts what it mounted).
    mustRun('rm', ['-rf', '--one-file-system', scratch]);
  }
  return tarball;
}

/** A flat apt repository holding the host's installed nodejs, repacked; made when missing. */
export function nodejsRepository(cacheDir: string): { dir: string; version: string } {
  const version = mustRun('dpkg-query', ['-W', '-f=${Version}', 'nodejs']).trim();
  if (!version)
    throw new Error('nodejs is not installed as a Debian package on this host: nothing to repack');
  const dir = join(cacheDir, `nodejs-repo-${version.replace(/[^A-Za-z0-9.+~-]/g, '_')}`);
  if (existsSync(join(dir, 'Packages'))) return { dir, version };
  mkdirSync(cacheDir, { recursive: true });
  const scratch = mkdtempSync(join(cacheDir, 'nodejs-repo-'));
  try {
    mustRun('dpkg-repack', ['nodejs'], { cwd: scratch });
    const packages = mustRun('dpkg-scanpackages', ['.', '/dev/null'], { cwd: scratch });
    writeFileSync(join(scratch, 'Packages'), packages);
    rmSync(dir, { recursive: true, force: true });
    renameSync(scratch, dir);
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    throw error;
  }
  return { dir, version };
}

export class BookwormChroot {
  private readonly mounts: string[] = [];

  private constructor(readonly root: string) {}

  /** Unpacks the cached tree under `parentDir`, mounts /proc, /dev and the apt archive cache. */
  static create(parentDir: string, cacheDir: string): BookwormChroot {
    const tarball = baseTarball(cacheDir);
    const root = join(parentDir, 'root');
    mkdirSync(root);
    const chroot = new BookwormChroot(root);
    try {
      mustRun('tar', ['--numeric-owner', '-C', root, '-xpf', tarball]);
      // apt in the chroot resolves deb.debian.org with the host's resolver settings.
      writeFileSync(join(root, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
      // Nothing may start a service in here (debhelper's snippets and deb-systemd-invoke ask this).
      writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
      chroot.mount(['-t', 'proc', 'proc'], 'proc');
      chroot.mount(['--bind', '/dev'], 'dev');
      const archives = join(cacheDir, 'apt-archives');
      mkdirSync(join(archives, 'partial'), { recursive: true });
      chroot.mount(['--bind', archives], 'var/cache/apt/archives');
    } catch (error) {
      chroot.destroy();
      throw error;
    }
    return chroot;
  }

  private mount(args: string[], target: string): void {
    const path = join(this.root, target);
    mustRun('mount', [...args, path]);
    this.mounts.push(path);
  }

  /** Runs a program inside, with a clean environment (plus `env`); throws when it fails. */
  run(args: readonly string[], env: Record<string, string> = {}): string {
    return mustRun('chroot', [this.root, ...this.envArgs(env), ...args]);
  }

  /** Like run(), but returns the exit status and output instead of throwing. */
  try(args: readonly string[], env: Record<string, string> = {}) {
    return spawnSync('chroot', [this.root, ...this.envArgs(env), ...args], { encoding: 'utf8' });
  }

  /** `chroot ROOT env -i PATH=... KEY=value... program args`: the argv for a program inside. */
  envArgs(env: Record<string, string>): string[] {
    const pairs = Object.entries({ PATH, LC_ALL: 'C.UTF-8', ...env }).map(([k, v]) => `${k}=${v}`);
    return ['/usr/bin/env', '-i', ...pairs];
  }

  path(inside: string): string {
    return join(this.root, inside);
  }

  /**
   * Unmounts (the last mounted first), then removes the tree. If anything is still mounted below
   * the root it removes nothing and throws: deleting through a bind mount of /dev would hurt the host.
   */
  destroy(): void {
    const problems: string[] = [];
    for (const path of this.mounts.reverse()) {
      const result = spawnSync('umount', [path], { encoding: 'utf8' });
      if (result.status !== 0) {
        // Busy (a process still inside): detach it, so at least the tree is no longer reachable.
        const lazy = spawnSync('umount', ['-l', path], { encoding: 'utf8' });
        if (lazy.status !== 0) problems.push(`${path}: ${result.stderr.trim()} / ${lazy.stderr.trim()}`);
      }
    }
    this.mounts.length = 0;
    const still = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[1])
      .filter(
        (mountPoint) => mountPoint && (mountPoint === this.root || mountPoint.startsWith(`${this.root}/`)),
      );
    if (still.length > 0 || problems.length > 0) {
      throw new Error(
        `could not unmount everything in ${this.root} (${[...problems, ...still].join('; ')}); ` +
          'left in place: unmount by hand, then remove it',
      );
    }
    mustRun('rm', ['-rf', '--one-file-system', this.root]);
  }
}
