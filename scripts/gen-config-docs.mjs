#!/usr/bin/env node
// Writes docs/configuration.md from the compiled settings schema (ENV_BINDINGS, which the @Env
// declarations in src/config/ make, and the defaults of `new Settings()`), so the page cannot drift
// from what the daemon reads.
//
//   node scripts/gen-config-docs.mjs [--check] [--doc <path>] [settings.js]
//
//   settings.js   compiled src/config/settings.ts (default: dist/src/config/settings.js; run `npm run build`)
//   --doc <path>  the page to write or check (default: docs/configuration.md)
//   --check       write nothing; exit 1 and show the differing lines when the page is not what would be written
//
// Exit codes: 0 ok, 1 out of date (--check) or schema problem, 2 bad usage.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = 'usage: node scripts/gen-config-docs.mjs [--check] [--doc <path>] [settings.js]';

function parseArgs(argv) {
  const options = { check: false, doc: join(ROOT, 'docs', 'configuration.md'), settings: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--check') options.check = true;
    else if (arg === '--doc') {
      if (i + 1 >= argv.length) usageError('--doc needs a path');
      options.doc = resolve(argv[++i]);
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg.startsWith('-')) usageError(`unknown option ${arg}`);
    else if (options.settings === undefined) options.settings = resolve(arg);
    else usageError(`unexpected argument ${arg}`);
  }
  options.settings ??= join(ROOT, 'dist', 'src', 'config', 'settings.js');
  return options;
}

function usageError(message) {
  console.error(`gen-config-docs: ${message}\n${USAGE}`);
  process.exit(2);
}

function fail(message) {
  console.error(`gen-config-docs: ${message}`);
  process.exit(1);
}

/** Loads the compiled schema, and the loader next to it (for a real "invalid value" message). */
function loadSchema(settingsPath) {
  if (!existsSync(settingsPath)) fail(`${display(settingsPath)} does not exist; run \`npm run build\` first`);
  const require = createRequire(settingsPath);
  const { Settings, ENV_BINDINGS } = require(settingsPath);
  if (typeof Settings !== 'function' || !Array.isArray(ENV_BINDINGS)) {
    fail(`${display(settingsPath)} does not export Settings and ENV_BINDINGS`);
  }
  const loaderPath = join(dirname(settingsPath), 'load-settings.js');
  const { loadSettings } = existsSync(loaderPath) ? require(loaderPath) : {};
  if (typeof loadSettings !== 'function') fail(`${display(loaderPath)} does not export loadSettings`);
  return { Settings, bindings: ENV_BINDINGS, loadSettings };
}

/** The dotted paths of the leaves of the defaults: a group (a nested object) is not a setting. */
function settingKeys(node, prefix = '') {
  return Object.entries(node).flatMap(([field, value]) =>
    value !== null && typeof value === 'object'
      ? settingKeys(value, `${prefix}${field}.`)
      : [`${prefix}${field}`],
  );
}

function valueAt(root, path) {
  return path.reduce((node, field) => node?.[field], root);
}

/** Every setting needs exactly one binding, and every binding a setting: else the page would lie. */
function checkBindings(defaults, bindings) {
  const keys = settingKeys(defaults);
  const bound = bindings.map((b) => b.key);
  const problems = [
    ...keys.filter((k) => !bound.includes(k)).map((k) => `setting ${k} has no @Env declaration`),
    ...bound.filter((k) => !keys.includes(k)).map((k) => `ENV_BINDINGS names ${k}, which Settings lacks`),
    ...bound.filter((k, i) => bound.indexOf(k) !== i).map((k) => `ENV_BINDINGS lists ${k} twice`),
    ...bindings.filter((b) => !b.description).map((b) => `ENV_BINDINGS entry ${b.key} has no description`),
  ];
  const names = bindings.flatMap((b) => b.names);
  problems.push(...names.filter((n, i) => names.indexOf(n) !== i).map((n) => `variable ${n} is bound twice`));
  if (problems.length > 0) fail(`the settings schema is inconsistent:\n  ${problems.join('\n  ')}`);
}

function exampleError(loadSettings) {
  try {
    loadSettings({ PORT: '99999' });
  } catch (error) {
    return error.message;
  }
  fail('loadSettings accepted PORT=99999; the example of an invalid value needs another value');
}

/** Escapes text for a table cell: `|` always, `<`/`>` outside code spans (else they read as HTML). */
function cell(text) {
  return String(text)
    .split(/(`[^`]*`)/)
    .map((part) => (part.startsWith('`') ? part : part.replace(/</g, '&lt;').replace(/>/g, '&gt;')))
    .join('')
    .replace(/\|/g, '\\|');
}

function code(text) {
  return `\`${text}\``;
}

function formatDefault(value) {
  if (value === undefined || value === null) return 'unset';
  return code(String(value));
}

function render({ Settings, bindings, loadSettings }) {
  const defaults = new Settings();
  checkBindings(defaults, bindings);
  const rows = bindings.map((b) => {
    const [name, ...aliases] = b.names;
    const variable = code(name) + (aliases.length ? `<br>alias ${aliases.map(code).join(', ')}` : '');
    return `| ${variable} | ${formatDefault(valueAt(defaults, b.path))} | ${cell(b.allowed ?? 'any')} | ${cell(b.description)} |`;
  });
  return [
    '# Configuration',
    '',
    '<!-- Generated by scripts/gen-config-docs.mjs from the @Env declarations and defaults in src/config/settings.ts',
    '     and src/config/groups/. Do not edit by hand: change those, then run',
    '     `npm run build && node scripts/gen-config-docs.mjs`.',
    '     `npm test` fails while this page and the schema disagree. -->',
    '',
    'The daemon reads its settings once, at start, from environment variables:',
    '',
    '- `CONFIG_FILE` names an optional env file (`KEY=value` lines, `#` comments). A variable set in the real',
    '  environment wins over the same variable in the file.',
    '- A setting with aliases takes the first of its names that is set, in the order listed below.',
    '- An empty value counts as unset: the default applies.',
    '- Numeric settings refuse text such as `8080abc`; booleans are `true`/`false`, `1`/`0` or `yes`/`no`.',
    "- Relative paths are taken from the daemon's working directory; the defaults keep everything under `./var`.",
    '- An invalid value stops the daemon before it listens, with exit code 2 and a message naming the variable,',
    '  the value given and what is allowed:',
    '',
    '  ```',
    '  libvirt-volume-provisioner: invalid configuration:',
    `  ${exampleError(loadSettings)}`,
    '  ```',
    '',
    '  An unreadable `CONFIG_FILE` stops it the same way.',
    '',
    'This build has only the `file` volume backend: `VOLUME_BACKEND=lvm` and `lvm-thin` are valid values, but the',
    'daemon refuses to start with them (exit code 1) until those backends land.',
    '',
    'Examples: [config/provisioner.env.example](../config/provisioner.env.example) (every setting with its default)',
    'and [systemd/libvirt-volume-provisioner.default](../systemd/libvirt-volume-provisioner.default) (the packaged',
    "daemon's `/etc/default` file).",
    '',
    '## Settings',
    '',
    '| Variable | Default | Allowed | Meaning |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

/** The differing lines of two texts, as `-`/`+` lines with line numbers (LCS over lines). */
function lineDiff(expected, actual, limit = 40) {
  const a = actual.split('\n');
  const b = expected.split('\n');
  const lcs = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
    } else if (i < a.length && (j >= b.length || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push(`  line ${i + 1} - ${a[i]}`);
      i++;
    } else {
      out.push(`  line ${j + 1} + ${b[j]}`);
      j++;
    }
  }
  if (out.length > limit) return [...out.slice(0, limit), `  ... and ${out.length - limit} more`];
  return out;
}

function display(path) {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const text = render(loadSchema(options.settings));
  if (options.check) {
    if (!existsSync(options.doc))
      fail(`${display(options.doc)} is missing; run: node scripts/gen-config-docs.mjs`);
    const onDisk = readFileSync(options.doc, 'utf8');
    if (onDisk === text) {
      console.log(`${display(options.doc)} matches the settings schema`);
      return;
    }
    console.log(
      `${display(options.doc)} disagrees with the settings schema in ${display(options.settings)}` +
        ' (- on disk, + generated):',
    );
    console.log(lineDiff(text, onDisk).join('\n'));
    console.log('Regenerate it: npm run build && node scripts/gen-config-docs.mjs');
    process.exit(1);
  }
  mkdirSync(dirname(options.doc), { recursive: true });
  writeFileSync(options.doc, text);
  console.log(`wrote ${display(options.doc)}`);
}

main();
