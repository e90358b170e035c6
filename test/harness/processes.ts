import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';

/**
 * Command lines of running processes whose argv contains `needle`, or that hold open the file
 * `needle` leads to (read from /proc, no ps). The second half matters because qemu-img writes a
 * volume through a descriptor it inherits (/proc/self/fd/3), so its argv no longer names the volume;
 * node processes (the daemon itself holds that descriptor while qemu-img runs) are left out, so
 * what is found is the writer.
 */
export function processesMentioning(needle: string): string[] {
  let target: string | undefined;
  try {
    target = realpathSync(needle);
  } catch {
    // nothing there (any more): only argv can mention it
  }
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (
        argv.some((arg) => arg.includes(needle)) ||
        (target && argv[0] !== process.execPath && holds(pid, target))
      ) {
        found.push(`${pid}: ${argv.join(' ')}`);
      }
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

function holds(pid: string, target: string): boolean {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return true;
    } catch {
      // closed while we looked
    }
  }
  return false;
}
