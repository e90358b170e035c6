#!/usr/bin/env node
// The LVM suite: builds its images on the host (fast, and the guest has no mkfs), then boots the
// guest once and runs every dist/test/vm/*.vmspec.js inside it. Prints the guest's output, whose
// last line is "N passed, N failed"; exits with the guest's exit code. Arguments are spec filters
// passed on to `test/run.mjs --vm` in the guest: `node test/vm/suite.mjs clone` runs clone.vmspec only.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const filters = process.argv.slice(2).filter((a) => /^[\w.-]+$/.test(a));
const dist = resolve(root, process.env.TEST_DIST ?? 'dist');
createRequire(import.meta.url)(join(dist, 'test', 'fixtures', 'images.js')).buildVmFixtures();

const guest = spawnSync(
  process.execPath,
  [
    join(root, 'test/vm/run-in-guest.mjs'),
    // vdb: lvm.vmspec.ts, vdc: clone.vmspec.ts, vdd: stream.vmspec.ts (each its own volume group).
    '--disks',
    '3',
    // Daemon starts of ~20 s each when the host is idle, minutes each when it is loaded: four for
    // lvm.vmspec, two for stream.vmspec (which alone took 1169 s at load average 25).
    '--timeout',
    process.env.LVP_VM_TIMEOUT ?? '3600',
    '--',
    `TEST_DIST=${relative(root, dist) || 'dist'} node test/run.mjs --vm ${filters.join(' ')}`.trim(),
  ],
  { stdio: 'inherit', cwd: root },
);
process.exit(guest.status ?? 1);
