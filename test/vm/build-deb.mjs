// Builds the project's .deb from a compiled tree with scripts/package-deb.sh, for the tests that
// install it (the .deb test in a chroot, the host-stack guest). One place, so both test the same
// package the same way.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/**
 * Packages `dist` into a fresh `out` directory. Returns the .deb's path and how long it took, or
 * `error` (package-deb.sh's own messages went to stderr).
 */
export function buildDeb({ root, dist, out }) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  const pack = spawnSync('bash', [join(root, 'scripts/package-deb.sh'), '--dist', dist, '--out', out], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const file = existsSync(out) ? readdirSync(out).find((name) => name.endsWith('.deb')) : undefined;
  if (pack.status !== 0 || !file) return { error: `scripts/package-deb.sh failed (exit ${pack.status})` };
  return { path: join(out, file), file, seconds: (performance.now() - t0) / 1000 };
}
