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
const GENERATOR = join(ROOT, 'scripts', 'gen-config-docs.mjs');
const DOC = join(ROOT, 'docs', 'configuration.md');
const EXAMPLE = join(ROOT, 'config', 'provisioner.env.example');
// This spec compiles to <outDir>/test/e2e/, the schema to <outDir>/src/config/.
const SETTINGS_JS = join(__dirname, '..', '..', 'src', 'config', 'settings.js');

interface EnvBinding {
  path: string[];
  names: string[];
}

/** Runs the generator with --check; returns its exit code and everything it printed. */
function check(...args: string[]): { code: number; output: string } {
  try {
    const output = execFileSync(process.execPath, [GENERATOR, '--check', ...args, SETTINGS_JS], {
      encoding: 'utf8',
      stdio: 'pipe',
    });
    return { code: 0, output };
  } catch (error) {
    const failed = error as { status: number | null; stdout?: string; stderr?: string };
    return { code: failed.status ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

describe('docs/configuration.md follows the settings schema', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'lvp-config-docs-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('matches what the generator makes from ENV_BINDINGS and the defaults', () => {
    const { code, output } = check();
    assert.equal(code, 0, output);
  });

  it('fails the check when a default in the page is changed by hand', () => {
    const original = readFileSync(DOC, 'utf8');
    assert.match(original, /^\| `PORT` \| `8080` \|/m);
    const edited = join(scratch, 'edited.md');
    writeFileSync(edited, original.replace(/^\| `PORT` \| `8080` \|/m, '| `PORT` | `9090` |'));
    const { code, output } = check('--doc', edited);
    assert.equal(code, 1, output);
    assert.match(output, /- \| `PORT` \| `9090` \|/);
    assert.match(output, /\+ \| `PORT` \| `8080` \|/);
  });

  it('fails the check when a setting is missing from the page', () => {
    const original = readFileSync(DOC, 'utf8');
    const edited = join(scratch, 'missing.md');
    writeFileSync(edited, original.replace(/^\| `JOB_TIMEOUT` .*\n/m, ''));
    const { code, output } = check('--doc', edited);
    assert.equal(code, 1, output);
    assert.match(output, /\+ \| `JOB_TIMEOUT` \|/);
  });

  it('names every setting with its default in config/provisioner.env.example', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const schema = require(SETTINGS_JS) as { Settings: new () => object; ENV_BINDINGS: EnvBinding[] };
    const defaults = new schema.Settings() as Record<string, unknown>;
    const lines = readFileSync(EXAMPLE, 'utf8').split('\n');
    for (const binding of schema.ENV_BINDINGS) {
      // A setting in a group (inspect.timeoutSeconds) sits at its path in the defaults.
      const value =
        binding.path.reduce<unknown>((node, field) => (node as Record<string, unknown>)[field], defaults) ??
        '';
      const expected = `#${binding.names[0]}=${String(value)}`;
      assert.ok(lines.includes(expected), `${EXAMPLE} has no line "${expected}"`);
    }
  });
});
