import { readFileSync } from 'node:fs';
import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';
import { parse as parseEnvFile } from 'dotenv';
import { ENV_BINDINGS, Settings } from './settings';

/** Raised when the configuration cannot be used; main.ts prints it and exits non-zero. */
export class ConfigError extends Error {}

const BOOLEAN_WORDS: Record<string, boolean> = {
  true: true,
  '1': true,
  yes: true,
  false: false,
  '0': false,
  no: false,
};

/**
 * Builds the Settings from the environment. CONFIG_FILE names an optional env file
 * (KEY=value lines); variables set in the real environment win over the file.
 */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const file = readConfigFile(env.CONFIG_FILE);
  const defaults = new Settings();
  const raw: Record<string, unknown> = {};
  const source: Partial<Record<keyof Settings, { name: string; value: string }>> = {};
  const problems: string[] = [];
  for (const binding of ENV_BINDINGS) {
    // The real environment wins over the file, whichever alias each of them uses.
    const given = pick(binding.names, env) ?? pick(binding.names, file);
    if (!given) continue;
    source[binding.key] = given;
    const value = coerce(defaults[binding.key], given.value);
    if (value === undefined) {
      problems.push(
        `${given.name}=${JSON.stringify(given.value)}: is not ${describeType(defaults[binding.key])} (allowed: ${binding.allowed})`,
      );
      continue;
    }
    raw[binding.key] = value;
  }
  const settings = plainToInstance(Settings, { ...defaults, ...raw });
  const errors = validateSync(settings, { forbidUnknownValues: true }).filter(
    (e) => !(e.property in source) || e.property in raw,
  );
  problems.push(...errors.map((e) => describe(e, source)));
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

function pick(
  names: string[],
  from: Record<string, string | undefined>,
): { name: string; value: string } | undefined {
  const name = names.find((n) => from[n] !== undefined && from[n] !== '');
  return name === undefined ? undefined : { name, value: from[name] as string };
}

/** Numbers and booleans are converted only when the text is exactly one ("8080abc" is not); else undefined. */
function coerce(defaultValue: unknown, value: string): unknown {
  if (typeof defaultValue === 'number') return parseNumber(value.trim());
  if (typeof defaultValue === 'boolean') return BOOLEAN_WORDS[value.trim().toLowerCase()];
  return value;
}

function describeType(defaultValue: unknown): string {
  return typeof defaultValue === 'number'
    ? 'an integer'
    : typeof defaultValue === 'boolean'
      ? 'true or false'
      : 'valid';
}

function describe(
  error: ValidationError,
  source: Partial<Record<keyof Settings, { name: string; value: string }>>,
) {
  const key = error.property as keyof Settings;
  const binding = ENV_BINDINGS.find((b) => b.key === key);
  const given = source[key];
  const name = given?.name ?? binding?.names[0] ?? key;
  const problems = Object.values(error.constraints ?? {})
    .map((m) => m.replace(new RegExp(`^${key} `), ''))
    .join('; ');
  const allowed = binding?.allowed ? ` (allowed: ${binding.allowed})` : '';
  return `${name}=${JSON.stringify(given?.value ?? error.value)}: ${problems}${allowed}`;
}

const SIZE_SUFFIX: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** An integer, optionally with a binary size suffix (50G = 50 GiB); undefined when it is neither. */
export function parseNumber(text: string): number | undefined {
  const match = /^(-?\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * SIZE_SUFFIX[match[2].toUpperCase()];
}

/** Loopback addresses and names: an API bound only there is reachable from this host alone. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Settings that are each valid but do not make sense together. */
function checkCombination(settings: Settings): void {
  if ((settings.tlsCertFile === undefined) !== (settings.tlsKeyFile === undefined)) {
    throw new ConfigError('TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither');
  }
  if (settings.clientCaCert && !settings.tlsCertFile) {
    throw new ConfigError('CLIENT_CA_CERT (mTLS) needs HTTPS: set TLS_CERT_FILE and TLS_KEY_FILE too');
  }
  const anyAuth = settings.apiTokensFile !== undefined || settings.clientCaCert !== undefined;
  if (!anyAuth && !settings.authDisabled && !isLoopbackHost(settings.host)) {
    throw new ConfigError(
      `HOST=${settings.host} would let anyone who can reach this host overwrite VM disks: no authentication is configured.\n` +
        'Configure API tokens (API_TOKENS_FILE, a mode-0600 file of name:token lines) and/or mTLS ' +
        '(TLS_CERT_FILE + TLS_KEY_FILE + CLIENT_CA_CERT), or keep HOST=127.0.0.1. ' +
        'AUTH_DISABLED=true runs without authentication anyway (isolated labs only).',
    );
  }
}
