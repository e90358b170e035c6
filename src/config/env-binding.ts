/**
 * The pure rules of reading one setting's text: which variable wins, and how its text becomes a
 * number or a boolean. load-settings.ts applies them to every binding.
 */
export interface GivenValue {
  /** The variable that supplied the value (an alias when that is what was set). */
  name: string;
  value: string;
}

/**
 * The first of `names` set to a non-empty value in the real environment, else in the env file:
 * the real environment wins whichever alias each of them uses. Empty counts as unset.
 */
export function readVariable(
  names: string[],
  env: Record<string, string | undefined>,
  file: Record<string, string | undefined>,
): GivenValue | undefined {
  return pick(names, env) ?? pick(names, file);
}

function pick(names: string[], from: Record<string, string | undefined>): GivenValue | undefined {
  const name = names.find((n) => from[n] !== undefined && from[n] !== '');
  return name === undefined ? undefined : { name, value: from[name] as string };
}

const BOOLEAN_WORDS: Record<string, boolean> = {
  true: true,
  '1': true,
  yes: true,
  false: false,
  '0': false,
  no: false,
};

/**
 * The text as the type of the setting's default. Numbers and booleans are converted only when the
 * text is exactly one ("8080abc" is not): else undefined. Settings without a default are text.
 */
export function coerce(defaultValue: unknown, value: string): unknown {
  if (typeof defaultValue === 'number') return parseNumber(value.trim());
  if (typeof defaultValue === 'boolean') return BOOLEAN_WORDS[value.trim().toLowerCase()];
  return value;
}

/** How the refusal of an unconvertible value names the expected type. */
export function describeType(defaultValue: unknown): string {
  return typeof defaultValue === 'number'
    ? 'an integer'
    : typeof defaultValue === 'boolean'
      ? 'true or false'
      : 'valid';
}

const SIZE_SUFFIX: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** An integer, optionally with a binary size suffix (50G = 50 GiB); undefined when it is neither. */
export function parseNumber(text: string): number | undefined {
  const match = /^(-?\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * SIZE_SUFFIX[match[2].toUpperCase()];
}
