#!/usr/bin/env node
// The test command. Runs every compiled spec with node:test, prints the spec reporter's output,
// and ends with one plain line: "N passed, N failed". Exit code 1 when anything failed.
//
//   node test/run.mjs                 host specs (dist/src/**/*.spec.js unit specs and
//                                     dist/test/**/*.spec.js real-parts specs), then the LVM
//                                     suite inside its VM (test/vm), then the .deb test
//                                     (test/package); one combined summary line
//   node test/run.mjs <filter...>     only host spec files whose path contains a filter
//   node test/run.mjs --vm            (inside the guest) the LVM specs, dist/test/vm/*.vmspec.js
//   node test/run.mjs --host          (inside the host guest) dist/test/vm/*.hostspec.js
//   node test/run.mjs --deb           only the .deb package test, dist/test/package/*.debspec.js
//                                     (root, network to deb.debian.org, ~3-4 min warm, 5 cold)
//   LVP_SKIP_VM=1                     leave the VM suite out (it needs qemu and ~5 minutes)
//   LVP_SKIP_DEB=1                    leave the .deb test out
//   LVP_HOST_VM=1                     also run the host-stack suite (test/vm/host-suite.mjs: systemd,
//                                     the .deb with apt, libvirtd; opt-in: slow under TCG)
//   TEST_DIST=<dir>                   compiled tree to run (default: dist)
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const root = new URL('..', import.meta.url).pathname;
const dist = process.env.TEST_DIST ?? join(root, 'dist');
const args = process.argv.slice(2);
const inGuest = args.includes('--vm');
// Inside the host guest (test/vm/host-suite.mjs): systemd, the .deb, libvirt.
const inHostGuest = args.includes('--host');
// The .deb test: builds the package, debootstraps a chroot (a few minutes; needs deb.debian.org).
const debOnly = args.includes('--deb');
const filters = args.filter((a) => !a.startsWith('--'));

function find(dir, suffix) {
  let out = [];
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(find(path, suffix));
    else if (name.endsWith(suffix)) out.push(path);
  }
  return out;
}

/** The fault suite's findings (FAULT-REPORT lines of test/harness/invariants.ts), shown again at the end. */
const faultReports = [];

// A spec file in a TCG guest takes minutes per daemon start when the host is loaded (test/vm/README.md).
const fileTimeoutMs = (inGuest ? 40 : 15) * 60 * 1000;

function runSpecs(files, concurrency) {
  return new Promise((resolve) => {
    let passed = 0;
    let failed = 0;
    const stream = run({ files, concurrency, timeout: fileTimeoutMs });
    stream.on('test:stdout', (event) => {
      for (const line of event.message.split('\n')) {
        if (line.startsWith('FAULT-REPORT ')) faultReports.push(line.slice('FAULT-REPORT '.length));
      }
    });
    stream.on('test:pass', (event) => {
      if (event.details.type !== 'suite') passed++;
    });
    stream.on('test:fail', (event) => {
      if (event.details.type !== 'suite') failed++;
    });
    const out = stream.compose(spec);
    out.pipe(process.stdout, { end: false });
    out.on('end', () => resolve({ passed, failed }));
  });
}

/** Boots a guest (suite.mjs: the LVM guest; host-suite.mjs: the host guest); reads its summary line. */
function runVmSuite(script = 'suite.mjs') {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(root, 'test/vm', script)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, TEST_DIST: dist },
    });
    let last = { passed: 0, failed: 1 };
    let buffer = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      buffer += chunk.toString();
      for (const match of buffer.matchAll(/^(\d+) passed, (\d+) failed$/gm)) {
        last = { passed: Number(match[1]), failed: Number(match[2]) };
      }
      buffer = buffer.slice(-200);
    });
    child.on('exit', (code) => {
      // A guest that died before reporting counts as one failure.
      if (code !== 0 && last.failed === 0) last = { ...last, failed: 1 };
      resolve(last);
    });
  });
}

let total;
if (debOnly) {
  total = await runSpecs(find(join(dist, 'test', 'package'), '.debspec.js'), 1);
} else if (inHostGuest) {
  total = await runSpecs(find(join(dist, 'test', 'vm'), '.hostspec.js').sort(), 1);
} else if (inGuest) {
  const files = find(join(dist, 'test', 'vm'), '.vmspec.js').sort();
  total = await runSpecs(files, 1);
} else {
  const files = [join(dist, 'src'), join(dist, 'test')]
    .flatMap((dir) => find(dir, '.spec.js'))
    .filter((file) => filters.length === 0 || filters.some((f) => relative(root, file).includes(f)))
    .sort();
  if (files.length === 0) {
    console.error('no spec files found; run the build first (npm test does)');
    process.exit(1);
  }
  total = await runSpecs(files, 2);
  if (
    filters.length === 0 &&
    process.env.LVP_SKIP_VM !== '1' &&
    !existsSync(join(root, 'test/vm/run-in-guest.mjs'))
  ) {
    process.stdout.write('\nNOTE: test/vm/run-in-guest.mjs is missing: the LVM suite did NOT run\n');
  } else if (filters.length === 0 && process.env.LVP_SKIP_VM !== '1') {
    process.stdout.write(
      `\nhost suite: ${total.passed} passed, ${total.failed} failed\n--- LVM suite in the VM\n`,
    );
    const vm = await runVmSuite();
    total = { passed: total.passed + vm.passed, failed: total.failed + vm.failed };
    // Opt-in for now: on this loaded 2-core machine the host guest's run is longer than the VM
    // stage's budget and has not passed end to end yet (test/vm/README.md, "The host guest").
    if (process.env.LVP_HOST_VM === '1') {
      process.stdout.write(
        `\nso far: ${total.passed} passed, ${total.failed} failed\n--- host stack in the VM\n`,
      );
      const hostStack = await runVmSuite('host-suite.mjs');
      total = { passed: total.passed + hostStack.passed, failed: total.failed + hostStack.failed };
    }
  }
  if (filters.length === 0 && process.env.LVP_SKIP_DEB !== '1') {
    process.stdout.write(`\nso far: ${total.passed} passed, ${total.failed} failed\n--- the .deb package\n`);
    const deb = await runSpecs(find(join(dist, 'test', 'package'), '.debspec.js'), 1);
    total = { passed: total.passed + deb.passed, failed: total.failed + deb.failed };
  }
}
if (faultReports.length > 0) {
  process.stdout.write(
    `\n--- fault suite report (${faultReports.length} cases)\n${faultReports.join('\n')}\n`,
  );
}
process.stdout.write(`\n${total.passed} passed, ${total.failed} failed\n`);
process.exitCode = total.failed > 0 ? 1 : 0;
