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
  const merged: Record<string, string | undefined> = { ...readConfigFile(env.CONFIG_FILE), ...env };
  const raw: Record<string, unknown> = {};
  const source: Partial<Record<keyof Settings, { name: string; value: string }>> = {};
  for (const binding of ENV_BINDINGS) {
    const name = binding.names.find((n) => merged[n] !== undefined && merged[n] !== '');
    if (!name) continue;
    const value = merged[name] as string;
    source[binding.key] = { name, value };
    raw[binding.key] = coerce(new Settings()[binding.key], value);
  }
  const settings = plainToInstance(Settings, { ...new Settings(), ...raw });
  const errors = validateSync(settings, { forbidUnknownValues: true });
  if (errors.length > 0) {
    throw new ConfigError(errors.map((e) => describe(e, source)).join('\n'));
  }
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

/** Numbers and booleans are converted only when the text is exactly one, so "8080abc" stays invalid. */
function coerce(defaultValue: unknown, value: string): unknown {
  if (typeof defaultValue === 'number') return /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof defaultValue === 'boolean') return BOOLEAN_WORDS[value.trim().toLowerCase()] ?? value;
  return value;
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
