/**
 * LVM's rules for an LV name (lvm(8) "VALID NAMES"), applied to every backend so a name that works
 * with the file backend also works when the host moves to LVM. Returns a reason, or undefined when valid.
 */
export function volumeNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  if (name.length > 127) return `must be at most 127 characters (has ${name.length})`;
  if (!/^[A-Za-z0-9+_.-]+$/.test(name)) return 'may contain only letters, digits and + _ . -';
  if (name.startsWith('-')) return "must not start with '-'";
  if (name === '.' || name === '..') return "must not be '.' or '..'";
  if (/^(snapshot|pvmove)/.test(name)) return "must not start with 'snapshot' or 'pvmove'";
  // The golden base LVs of the lvm-thin backend (cache/bases/thin-base-rules.ts).
  if (name.startsWith('lvp-base-')) return "must not start with 'lvp-base-' (reserved for golden bases)";
  const reserved = [
    '_cdata',
    '_cmeta',
    '_corig',
    '_cpool',
    '_cvol',
    '_iorig',
    '_mlog',
    '_mimage',
    '_pmspare',
    '_rimage',
    '_rmeta',
    '_tdata',
    '_tmeta',
    '_vorigin',
    '_vdata',
    '_wcorig',
  ];
  const part = reserved.find((r) => name.includes(r));
  if (part) return `must not contain '${part}' (reserved by LVM)`;
  return undefined;
}
