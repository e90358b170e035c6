import { readdirSync, readFileSync } from 'node:fs';

/** Command lines of running processes whose argv contains `needle` (read from /proc, no ps). */
export function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (argv.some((arg) => arg.includes(needle))) found.push(`${pid}: ${argv.join(' ')}`);
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}
