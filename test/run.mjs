#!/usr/bin/env node
// Runs every compiled spec (dist/src/**/*.spec.js unit specs, dist/test/**/*.spec.js real-parts
// specs) with node:test, prints the spec reporter's output, and ends with one plain line:
// "N passed, N failed". Exit code 1 when anything failed.
//   node test/run.mjs [filter...]   only files whose path contains one of the filters
//   TEST_DIST=<dir>                  compiled tree to run (default: dist)
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function find(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(find(path));
    else if (name.endsWith('.spec.js')) out.push(path);
  }
  return out;
}

const dist = process.env.TEST_DIST ?? join(root, 'dist');
const files = [join(dist, 'src'), join(dist, 'test')]
  .flatMap((dir) => {
    try {
      return find(dir);
    } catch {
      return [];
    }
  })
  .filter((file) => filters.length === 0 || filters.some((f) => relative(root, file).includes(f)))
  .sort();

if (files.length === 0) {
  console.error('no spec files found; run the build first (npm test does)');
  process.exit(1);
}

let passed = 0;
let failed = 0;
const stream = run({ files, concurrency: 2, timeout: 10 * 60 * 1000 });
stream.on('test:pass', (event) => {
  if (event.details.type !== 'suite') passed++;
});
stream.on('test:fail', (event) => {
  if (event.details.type !== 'suite') failed++;
});
stream.compose(spec).pipe(process.stdout);
stream.on('end', () => {
  // Let the spec reporter flush before the summary line.
  setImmediate(() => {
    process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
    process.exitCode = failed > 0 ? 1 : 0;
  });
});
