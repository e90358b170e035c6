import { readdir, readFile, readlink } from 'node:fs/promises';

export interface Holder {
  pid: number;
  command: string;
}

/**
 * The processes (other than this one) that hold `path` open, read from /proc/<pid>/fd as lsof
 * does. A qemu process of a running VM holds its disk file open for as long as the VM runs.
 * Processes that vanish while being looked at are skipped.
 */
export async function processesHolding(path: string, proc = '/proc'): Promise<Holder[]> {
  const holders: Holder[] = [];
  for (const entry of await readdir(proc)) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let fds: string[];
    try {
      fds = await readdir(`${proc}/${entry}/fd`);
    } catch {
      continue; // gone, or a kernel thread
    }
    for (const fd of fds) {
      const target = await readlink(`${proc}/${entry}/fd/${fd}`).catch(() => undefined);
      if (target === path) {
        const command = (await readFile(`${proc}/${entry}/comm`, 'utf8').catch(() => '?')).trim();
        holders.push({ pid: Number(entry), command });
        break;
      }
    }
  }
  return holders;
}

/** "process 4242 (qemu-system-x86)", for the 409 volume_in_use message. */
export function describeHolders(holders: Holder[]): string | undefined {
  if (holders.length === 0) return undefined;
  const named = holders.map((h) => `process ${h.pid} (${h.command})`).join(', ');
  return `the file is open: ${named} holds it`;
}
