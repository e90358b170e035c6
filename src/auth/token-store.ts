import { messageOf } from '../common/errors';
import { createHash, timingSafeEqual } from 'node:crypto';
import { statSync } from 'node:fs';
import { readConfigFile } from '../common/config-file';

/** One accepted token: its name (the principal) and the sha256 of its value. */
export interface TokenEntry {
  name: string;
  sha256: Buffer;
}

export class TokenFileError extends Error {}

/**
 * Parses an API tokens file: `name:token` or `name:sha256:<64 hex>` per line; `#` comments and
 * blank lines are ignored. A bad line is reported by number only: it may hold a secret.
 */
export function parseTokens(text: string, file: string): TokenEntry[] {
  const entries: TokenEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const secret = colon > 0 ? line.slice(colon + 1) : '';
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name) || secret.length === 0) {
      throw new TokenFileError(`${file} line ${index + 1}: expected name:token or name:sha256:<hex>`);
    }
    const hashed = /^sha256:([0-9a-fA-F]{64})$/.exec(secret);
    if (hashed) {
      entries.push({ name, sha256: Buffer.from(hashed[1], 'hex') });
      return;
    }
    if (secret.length < 16) {
      throw new TokenFileError(
        `${file} line ${index + 1}: the token of "${name}" is shorter than 16 characters`,
      );
    }
    entries.push({ name, sha256: sha256(secret) });
  });
  return entries;
}

/** Reads the tokens file, refusing one that group or others can read. */
export function loadTokens(file: string): TokenEntry[] {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch (error) {
    throw new TokenFileError(`API_TOKENS_FILE ${file} cannot be read: ${messageOf(error)}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new TokenFileError(
      `API_TOKENS_FILE ${file} has mode 0${mode.toString(8)}: it must not be readable by group or others; run chmod 600 ${file}`,
    );
  }
  let text: string;
  try {
    text = readConfigFile(file, 'API_TOKENS_FILE').toString('utf8');
  } catch (error) {
    throw new TokenFileError(messageOf(error));
  }
  return parseTokens(text, file);
}

/**
 * The name of the token that matches `presented`, comparing sha256 digests in constant time and
 * always looking at every entry, so timing tells nothing about which one matched or how close.
 */
export function matchToken(entries: TokenEntry[], presented: string): string | undefined {
  const digest = sha256(presented);
  let found: string | undefined;
  for (const entry of entries) {
    if (timingSafeEqual(entry.sha256, digest) && found === undefined) found = entry.name;
  }
  return found;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
