import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';

/** The repository: the first folder above this compiled spec that holds package.json. */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}`);
  }
}

const ROOT = repoRoot();
const SCRIPT = join(ROOT, 'scripts', 'check-engines.mjs');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'npm');
const scratch = mkdtempSync(join(tmpdir(), 'lvp-engines-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs scripts/check-engines.mjs as .ci/run does; its exit code and everything it printed. */
function check(...args: string[]): { code: number; output: string } {
  try {
    const output = execFileSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', stdio: 'pipe' });
    return { code: 0, output };
  } catch (error) {
    const failed = error as { status: number | null; stdout?: string; stderr?: string };
    return { code: failed.status ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

describe('supported Node.js engines (scripts/check-engines.mjs, run by .ci/run)', () => {
  it('fails on npm ci output with EBADENGINE warnings and prints the offending lines', () => {
    // The output of `npm ci` on Node 20.20.2 before issue 16, captured as it was.
    const result = check('--npm-log', join(FIXTURES, 'ci-ebadengine.txt'));
    assert.equal(result.code, 1, result.output);
    for (const pkg of [
      'content-disposition@3.1.0',
      'cookie@2.0.2',
      'file-type@22.3.0',
      'nestjs-pino@5.2.1',
    ]) {
      assert.match(result.output, new RegExp(`EBADENGINE   package: '${pkg}'`), pkg);
    }
    assert.doesNotMatch(result.output, /added 461 packages/, 'only the EBADENGINE lines are printed');
  });

  it('passes npm ci output without one', () => {
    const result = check('--npm-log', join(FIXTURES, 'ci-clean.txt'));
    assert.equal(result.code, 0, result.output);
  });

  it('finds no package in package-lock.json whose engines.node excludes this Node or Node 20.19', () => {
    const result = check('--lock', join(ROOT, 'package-lock.json'));
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, new RegExp(`supports Node ${process.versions.node.replace(/\./g, '\\.')}`));
    assert.match(result.output, /20\.19\.0/, 'the oldest Node package.json admits is checked too');
  });

  it('names a locked package that needs a newer Node, even one that only excludes 20.19', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string; engines?: { node?: string }; dev?: boolean }>;
    };
    lock.packages['node_modules/needs-22'] = { version: '1.0.0', engines: { node: '>=22' } };
    lock.packages['node_modules/needs-20-20'] = { version: '2.0.0', engines: { node: '>=20.20' }, dev: true };
    const file = join(scratch, 'package-lock.json');
    writeFileSync(file, JSON.stringify(lock));
    const result = check('--lock', file, '--node', '20.20.2');
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, /needs-22@1\.0\.0: engines\.node ">=22" excludes 20\.20\.2/);
    assert.match(result.output, /needs-22@1\.0\.0: engines\.node ">=22" excludes 20\.19\.0/);
    assert.match(result.output, /needs-20-20@2\.0\.0 \(dev\): engines\.node ">=20\.20" excludes 20\.19\.0/);
    assert.doesNotMatch(
      result.output,
      /needs-20-20@2\.0\.0 \(dev\): engines\.node ">=20\.20" excludes 20\.20\.2/,
    );
  });

  it('refuses to run without saying what to check', () => {
    assert.equal(check().code, 2);
  });
});
