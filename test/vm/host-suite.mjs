#!/usr/bin/env node
// The host-stack suite: builds the .deb from the compiled tree (scripts/package-deb.sh) and the
// images on the host, then boots the host guest (Debian with systemd as PID 1; build-host-guest.sh)
// once and runs every dist/test/vm/*.hostspec.js inside it. Prints the guest's output, whose last
// line is "N passed, N failed"; exits with the guest's exit code.
import { spawnSync } from 'node:child_process';
import { buildDeb as buildDebFile } from './build-deb.mjs';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const dist = resolve(root, process.env.TEST_DIST ?? 'dist');
createRequire(import.meta.url)(join(dist, 'test', 'fixtures', 'images.js')).buildVmFixtures();

/** The .deb of this compiled tree; LVP_HOST_DEB=<file> uses a package built before instead. */
function buildDeb() {
  if (process.env.LVP_HOST_DEB) return resolve(process.env.LVP_HOST_DEB);
  const built = buildDebFile({ root, dist, out: join(root, '.tmp', 'host-guest-deb') });
  if (built.error) {
    process.stderr.write(`host-suite: ${built.error}\n`);
    process.stdout.write('0 passed, 1 failed\n');
    process.exit(1);
  }
  process.stderr.write(`host-suite: built ${built.file} in ${built.seconds.toFixed(1)} s\n`);
  return built.path;
}
const deb = buildDeb();
if (relative(root, deb).startsWith('..')) {
  process.stderr.write(`host-suite: ${deb} must be inside the repository (the guest sees only that)\n`);
  process.exit(2);
}

const guest = spawnSync(
  process.execPath,
  [
    join(root, 'test/vm/run-in-guest.mjs'),
    '--guest',
    'host',
    '--disks',
    '1',
    // Under TCG on a loaded 2-core machine the whole first day took 15-30 min (test/vm/README.md).
    '--timeout',
    process.env.LVP_VM_TIMEOUT ?? '3000',
    '--',
    `LVP_HOST_DEB=${deb} TEST_DIST=${relative(root, dist) || 'dist'} node test/run.mjs --host`,
  ],
  { stdio: 'inherit', cwd: root },
);
process.exit(guest.status ?? 1);
