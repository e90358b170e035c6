#!/usr/bin/env node
// The test command. Runs every compiled spec with node:test, prints the spec reporter's output,
// and ends with one plain line: "N passed, N failed". Exit code 1 when anything failed.
//
//   node test/run.mjs                 host specs (dist/src/**/*.spec.js unit specs and
//                                     dist/test/**/*.spec.js real-parts specs), then the LVM
//                                     suite inside its VM (test/vm), then the .deb test
//                                     (test/package), then the host-stack suite (the same .deb
//                                     under systemd with libvirtd, test/vm/host-suite.mjs); one
//                                     combined summary line. The host guest's root filesystem
//                                     is built (or found cached) beside the host specs.
//   node test/run.mjs <filter...>     only host spec files whose path contains a filter
//   node test/run.mjs --vm            (inside the guest) the LVM specs, dist/test/vm/*.vmspec.js
//   node test/run.mjs --host          (inside the host guest) dist/test/vm/*.hostspec.js
//   node test/run.mjs --deb           only the .deb package test, dist/test/package/*.debspec.js
//                                     (root, network to deb.debian.org, ~3-4 min warm, 5 cold)
//   LVP_SKIP_VM=1                     leave the VM suite out (it needs qemu and ~5 minutes)
//   LVP_SKIP_DEB=1                    leave the .deb test out
//   LVP_SKIP_HOST_VM=1                leave the host-stack suite out (systemd, the .deb with apt,
//                                     libvirtd: ~10-20 min under TCG, plus ~6-30 min for a cold guest)
//   TEST_DIST=<dir>                   compiled tree to run (default: dist)
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { buildDeb as buildDebFile } from './vm/build-deb.mjs';

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

// A spec file in a TCG guest takes minutes per daemon start when the host is loaded (test/vm/README.md):
// host.hostspec.js ran past 15 minutes at load average 24 (its apt install alone took 415 s).
const fileTimeoutMs = (inGuest || inHostGuest ? 40 : 15) * 60 * 1000;

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
function runVmSuite(script = 'suite.mjs', env = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(root, 'test/vm', script)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, TEST_DIST: dist, ...env },
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

/**
 * Starts test/vm/build-host-guest.sh (a cache hit takes a second); resolves to a line saying how it
 * went. Its log is .tmp/host-guest-build.log. A failure here is not counted: the host stage runs
 * the script again (under the same lock) and fails with its message.
 */
function buildHostGuestInBackground() {
  mkdirSync(join(root, '.tmp'), { recursive: true });
  const logFile = join(root, '.tmp', 'host-guest-build.log');
  const log = openSync(logFile, 'w');
  const t0 = performance.now();
  const child = spawn('bash', [join(root, 'test/vm/build-host-guest.sh')], { stdio: ['ignore', log, log] });
  return new Promise((resolve) => {
    child.on('error', (error) => resolve(`could not start: ${error.message}`));
    child.on('exit', (code) => {
      const seconds = ((performance.now() - t0) / 1000).toFixed(0);
      resolve(`exit ${code} after ${seconds} s (log: ${relative(root, logFile)})`);
    });
  });
}

/** The .deb of this compiled tree (scripts/package-deb.sh), in .tmp/deb; undefined when it failed. */
function buildDeb() {
  const built = buildDebFile({ root, dist, out: join(root, '.tmp', 'deb') });
  if (built.error) {
    process.stderr.write(`run.mjs: ${built.error}: no .deb to test\n`);
    return undefined;
  }
  process.stdout.write(`\n# built ${built.file} in ${built.seconds.toFixed(1)} s\n`);
  return built.path;
}

let total;
if (debOnly) {
  total = await runSpecs(find(join(dist, 'test', 'package'), '.debspec.js'), 1);
} else if (inHostGuest) {
  total = await runSpecs(find(join(dist, 'test', 'vm'), '.hostspec.js').sort(), 1);
} else if (inGuest) {
  // A path filter picks specs here too: `node test/run.mjs --vm clone` runs clone.vmspec.js only.
  const files = find(join(dist, 'test', 'vm'), '.vmspec.js')
    .filter((file) => filters.length === 0 || filters.some((f) => relative(root, file).includes(f)))
    .sort();
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
  const wholeSuite = filters.length === 0;
  const vmStage = wholeSuite && process.env.LVP_SKIP_VM !== '1';
  const hostStage = vmStage && process.env.LVP_SKIP_HOST_VM !== '1';
  const debStage = wholeSuite && process.env.LVP_SKIP_DEB !== '1';
  // A cold host guest is minutes of downloads and dpkg (debootstrap + apt from deb.debian.org), mostly
  // waiting on the network: build it now, beside the host specs, so that its stage finds it cached.
  const guestBuild = hostStage ? buildHostGuestInBackground() : undefined;
  total = await runSpecs(files, 2);
  if (vmStage && !existsSync(join(root, 'test/vm/run-in-guest.mjs'))) {
    process.stdout.write('\nNOTE: test/vm/run-in-guest.mjs is missing: the LVM suite did NOT run\n');
  } else if (vmStage) {
    process.stdout.write(
      `\nhost suite: ${total.passed} passed, ${total.failed} failed\n--- LVM suite in the VM\n`,
    );
    const vm = await runVmSuite();
    total = { passed: total.passed + vm.passed, failed: total.failed + vm.failed };
  }
  // One .deb for both stages that install it (the chroot test and the host guest).
  const deb = debStage || hostStage ? buildDeb() : undefined;
  if (debStage) {
    process.stdout.write(`\nso far: ${total.passed} passed, ${total.failed} failed\n--- the .deb package\n`);
    if (deb) process.env.LVP_DEB = deb;
    const debSpecs = await runSpecs(find(join(dist, 'test', 'package'), '.debspec.js'), 1);
    total = { passed: total.passed + debSpecs.passed, failed: total.failed + debSpecs.failed };
  }
  if (hostStage) {
    process.stdout.write(
      `\nso far: ${total.passed} passed, ${total.failed} failed\n--- host stack in the VM\n`,
    );
    const built = await guestBuild;
    process.stdout.write(`# host guest build beside the host specs: ${built}\n`);
    // Without a .deb the stage cannot run: one failure (buildDeb said why on stderr).
    const hostStack = deb
      ? await runVmSuite('host-suite.mjs', { LVP_HOST_DEB: deb })
      : { passed: 0, failed: 1 };
    total = { passed: total.passed + hostStack.passed, failed: total.failed + hostStack.failed };
  }
}
if (faultReports.length > 0) {
  process.stdout.write(
    `\n--- fault suite report (${faultReports.length} cases)\n${faultReports.join('\n')}\n`,
  );
}
process.stdout.write(`\n${total.passed} passed, ${total.failed} failed\n`);
process.exitCode = total.failed > 0 ? 1 : 0;
