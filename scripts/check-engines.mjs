#!/usr/bin/env node
// Supported dependencies only: fails when npm reports, or the lock file shows, a package whose
// `engines.node` leaves out a Node.js version the daemon runs on (package.json engines: >= 20.19).
// npm only warns (EBADENGINE) and installs anyway; such a package may use what Node 20 lacks and
// fail at run time on a supported host.
//
//   node scripts/check-engines.mjs --npm-log <file>   npm's output (stdout and stderr); exit 1 and
//                                                     print its EBADENGINE lines when it has any
//   node scripts/check-engines.mjs --lock [<file>]    package-lock.json (default: the repository's);
//                                                     exit 1 and name each package whose engines.node
//                                                     excludes the running Node or the oldest one
//                                                     package.json's engines admit (--node <v> instead
//                                                     of the running one)
//
// Exit codes: 0 ok, 1 unsupported engine found, 2 bad usage.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = 'usage: node scripts/check-engines.mjs (--npm-log <file> | --lock [<file>] [--node <version>])';
// semver is what npm itself checks engines with (npm-install-checks), so the verdicts agree.
const semver = createRequire(join(ROOT, 'package.json'))('semver');

function usageError(message) {
  console.error(`check-engines: ${message}\n${USAGE}`);
  process.exit(2);
}

/** The lines of npm's output that belong to an EBADENGINE warning. */
export function ebadengineLines(text) {
  return text.split('\n').filter((line) => line.includes('EBADENGINE'));
}

/**
 * Each lock-file package whose engines.node is not satisfied by one of `nodeVersions`, as npm
 * would judge it (prereleases included; a range semver cannot read is a failure, as in npm).
 */
export function lockEngineProblems(lock, nodeVersions) {
  const problems = [];
  for (const [path, meta] of Object.entries(lock.packages ?? {})) {
    const range = meta.engines?.node;
    if (typeof range !== 'string') continue;
    for (const node of nodeVersions) {
      if (!semver.satisfies(node, range, { includePrerelease: true })) {
        const name = path === '' ? `${lock.name} (package.json)` : path.replace(/^.*node_modules\//, '');
        problems.push({ name, version: meta.version, range, node, dev: meta.dev === true });
      }
    }
  }
  return problems;
}

function checkNpmLog(file) {
  const lines = ebadengineLines(readFileSync(file, 'utf8'));
  if (lines.length === 0) return 0;
  console.error('check-engines: npm warned about packages that do not support this Node.js (EBADENGINE):');
  for (const line of lines) console.error(line);
  console.error(
    'check-engines: pick versions whose engines include Node 20.19 (npm view <pkg>@<version> engines), ' +
      'or an override in package.json for a transitive one; see docs/installation.md',
  );
  return 1;
}

function checkLock(file, node) {
  const lock = JSON.parse(readFileSync(file, 'utf8'));
  const supported = lock.packages?.['']?.engines?.node;
  // The running Node, and the oldest one the daemon claims to support: a package that needs
  // 20.20 passes on this machine but breaks on a 20.19 host.
  const versions = [node];
  const oldest = supported ? semver.minVersion(supported)?.version : undefined;
  if (oldest && oldest !== node) versions.push(oldest);
  const problems = lockEngineProblems(lock, versions);
  if (problems.length === 0) {
    console.log(`check-engines: every package in ${file} supports Node ${versions.join(' and ')}`);
    return 0;
  }
  console.error(`check-engines: packages in ${file} that do not support a Node.js the daemon runs on:`);
  for (const p of problems) {
    console.error(
      `  ${p.name}@${p.version}${p.dev ? ' (dev)' : ''}: engines.node "${p.range}" excludes ${p.node}`,
    );
  }
  return 1;
}

function main(argv) {
  let npmLog;
  let lock;
  let node = process.versions.node;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--npm-log') {
      if (i + 1 >= argv.length) usageError('--npm-log needs a file');
      npmLog = argv[++i];
    } else if (arg === '--lock') {
      lock =
        i + 1 < argv.length && !argv[i + 1].startsWith('--') ? argv[++i] : join(ROOT, 'package-lock.json');
    } else if (arg === '--node') {
      if (i + 1 >= argv.length || !semver.valid(argv[i + 1]))
        usageError('--node needs a version like 20.19.0');
      node = argv[++i];
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else usageError(`unknown argument '${arg}'`);
  }
  if ((npmLog === undefined) === (lock === undefined)) usageError('give one of --npm-log or --lock');
  return npmLog !== undefined ? checkNpmLog(npmLog) : checkLock(lock, node);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exit(main(process.argv.slice(2)));
}
