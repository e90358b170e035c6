/**
 * Expected sha256 digests: from a request (`sha256:<hex>`) or a sidecar file next to the image.
 * Pure functions; each returns the lower-case hex digest or an error message quoting the input.
 */
const HEX64 = /^[0-9a-fA-F]{64}$/;

export type ParsedChecksum = { sha256: string } | { error: string };

/** `sha256:<hex>` as sent in a request's `checksum` field. */
export function parseRequestChecksum(value: string): ParsedChecksum {
  const match = /^sha256:([0-9a-fA-F]{64})$/.exec(value.trim());
  if (!match)
    return { error: `checksum must look like sha256:<64 hex digits>, got ${JSON.stringify(value)}` };
  return { sha256: match[1].toLowerCase() };
}

/**
 * A `.sha256` sidecar: a bare digest, `sha256sum` output (`<hex>  <name>` or `<hex> *<name>`,
 * possibly one line per file: the line naming `objectName` is used), or BSD style
 * (`SHA256 (<name>) = <hex>`). Case-insensitive.
 */
export function parseSidecar(text: string, objectName: string): ParsedChecksum {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
  const quoted = JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}...` : text);
  if (lines.length === 0) return { error: `sidecar is empty: ${quoted}` };

  const entries: { hex: string; name?: string }[] = [];
  for (const line of lines) {
    if (HEX64.test(line)) {
      entries.push({ hex: line });
      continue;
    }
    const gnu = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
    if (gnu) {
      entries.push({ hex: gnu[1], name: gnu[2] });
      continue;
    }
    const bsd = /^SHA256 ?\((.+)\) ?= ?([0-9a-fA-F]{64})$/i.exec(line);
    if (bsd) {
      entries.push({ hex: bsd[2], name: bsd[1] });
      continue;
    }
    return {
      error: `sidecar line is not a sha256 digest, sha256sum or BSD line: ${JSON.stringify(line)} in ${quoted}`,
    };
  }

  const base = (name: string) => name.replace(/^.*\//, '');
  const wanted = base(objectName);
  if (entries.length === 1 && (entries[0].name === undefined || base(entries[0].name) === wanted)) {
    return { sha256: entries[0].hex.toLowerCase() };
  }
  const match = entries.filter((e) => e.name !== undefined && base(e.name) === wanted);
  if (match.length === 1) return { sha256: match[0].hex.toLowerCase() };
  if (match.length > 1) return { error: `sidecar names ${wanted} more than once: ${quoted}` };
  return { error: `sidecar has no line for ${wanted}: ${quoted}` };
}
