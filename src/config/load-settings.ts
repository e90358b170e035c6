import { readFileSync } from 'node:fs';
import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';
import { parse as parseEnvFile } from 'dotenv';
import { type EnvBinding, valueAt } from './env.decorator';
import { coerce, describeType, type GivenValue, readVariable } from './env-binding';
import { ENV_BINDINGS, Settings } from './settings';

export { parseNumber } from './env-binding';

/** Raised when the configuration cannot be used; main.ts prints it and exits non-zero. */
export class ConfigError extends Error {}

/**
 * Builds the Settings from the environment. CONFIG_FILE names an optional env file
 * (KEY=value lines); variables set in the real environment win over the file.
 */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const file = readConfigFile(env.CONFIG_FILE);
  const defaults = new Settings();
  // A plain copy of the defaults with the given values in it; class-transformer builds the groups.
  const plain = structuredClone(defaults) as unknown as Record<string, unknown>;
  const given = new Map<string, GivenValue>();
  const converted = new Set<string>();
  const problems: string[] = [];
  for (const binding of ENV_BINDINGS) {
    const found = readVariable(binding.names, env, file);
    if (!found) continue;
    given.set(binding.key, found);
    const fallback = valueAt(defaults, binding.path);
    const value = coerce(fallback, found.value);
    if (value === undefined) {
      problems.push(
        `${found.name}=${JSON.stringify(found.value)}: is not ${describeType(fallback)} (allowed: ${binding.allowed})`,
      );
      continue;
    }
    setAt(plain, binding.path, value);
    converted.add(binding.key);
  }
  const settings = plainToInstance(Settings, plain);
  // A value that could not be converted is reported above; its default is not worth a second line.
  const invalid = leafErrors(validateSync(settings, { forbidUnknownValues: true })).filter(
    (e) => !given.has(e.key) || converted.has(e.key),
  );
  problems.push(...invalid.map((e) => describe(e, given)));
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  checkCombination(settings);
  return settings;
}

function readConfigFile(path: string | undefined): Record<string, string> {
  if (!path) return {};
  try {
    return parseEnvFile(readFileSync(path));
  } catch (err) {
    throw new ConfigError(`CONFIG_FILE=${path}: cannot read it (${(err as Error).message})`);
  }
}

function setAt(root: Record<string, unknown>, path: string[], value: unknown): void {
  const parent = path.slice(0, -1).reduce((node, field) => node[field] as Record<string, unknown>, root);
  parent[path[path.length - 1]] = value;
}

interface LeafError {
  /** Dotted path of the setting, as EnvBinding.key. */
  key: string;
  error: ValidationError;
}

/** The errors of the settings themselves: a group's error only carries its fields' errors. */
function leafErrors(errors: ValidationError[], prefix = ''): LeafError[] {
  return errors.flatMap((error) => {
    const key = prefix + error.property;
    const own = error.constraints ? [{ key, error }] : [];
    return [...own, ...leafErrors(error.children ?? [], `${key}.`)];
  });
}

function describe({ key, error }: LeafError, given: Map<string, GivenValue>): string {
  const binding: EnvBinding | undefined = ENV_BINDINGS.find((b) => b.key === key);
  const found = given.get(key);
  const name = found?.name ?? binding?.names[0] ?? key;
  // class-validator starts each message with the field's name; the variable's name replaces it.
  const problems = Object.values(error.constraints ?? {})
    .map((m) => m.replace(new RegExp(`^${error.property} `), ''))
    .join('; ');
  const allowed = binding?.allowed ? ` (allowed: ${binding.allowed})` : '';
  return `${name}=${JSON.stringify(found?.value ?? error.value)}: ${problems}${allowed}`;
}

/** Loopback addresses and names: an API bound only there is reachable from this host alone. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Settings that are each valid but do not make sense together. */
function checkCombination({ host, tls, auth }: Settings): void {
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new ConfigError('TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither');
  }
  if (tls.clientCaCert && !tls.certFile) {
    throw new ConfigError('CLIENT_CA_CERT (mTLS) needs HTTPS: set TLS_CERT_FILE and TLS_KEY_FILE too');
  }
  const anyAuth = auth.apiTokensFile !== undefined || tls.clientCaCert !== undefined;
  if (!anyAuth && !auth.disabled && !isLoopbackHost(host)) {
    throw new ConfigError(
      `HOST=${host} would let anyone who can reach this host overwrite VM disks: no authentication is configured.\n` +
        'Configure API tokens (API_TOKENS_FILE, a mode-0600 file of name:token lines) and/or mTLS ' +
        '(TLS_CERT_FILE + TLS_KEY_FILE + CLIENT_CA_CERT), or keep HOST=127.0.0.1. ' +
        'AUTH_DISABLED=true runs without authentication anyway (isolated labs only).',
    );
  }
}
