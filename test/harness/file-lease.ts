import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';

/**
 * Holds a Linux write lease (fcntl F_SETLEASE, F_WRLCK) on a file from a python3 child: any other
 * process that opens the file, even to read, blocks in open(2) until the lease is let go (or the
 * kernel's lease-break-time, 45 s by default, runs out). The specs use it to keep a real clone in
 * flight inside the daemon (its reflink copy opens the base first) without any hook in the daemon.
 */
export class FileLease {
  private readonly child: ChildProcess;
  private output = '';
  private readonly exited: Promise<unknown>;

  private constructor(path: string) {
    this.child = spawn('python3', ['-u', '-c', HOLDER, path], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdout!.on('data', (chunk) => (this.output += chunk));
    this.exited = once(this.child, 'exit');
  }

  /** Takes the lease; resolves once it is held. */
  static async take(path: string): Promise<FileLease> {
    const lease = new FileLease(path);
    await lease.until('held');
    return lease;
  }

  /** Resolves when someone opened the file and is now waiting for the lease (SIGIO). */
  opened(): Promise<void> {
    return this.until('broken');
  }

  /** Lets go: the blocked open goes on. */
  async release(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.end('\n');
    await this.exited;
  }

  private async until(word: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!this.output.split('\n').includes(word)) {
      if (this.child.exitCode !== null) throw new Error(`lease holder exited: ${this.output}`);
      if (Date.now() > deadline) throw new Error(`lease holder never said ${word}: ${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

/** Why the lease specs cannot run here, or undefined (python3 present and leases enabled). */
export function fileLeaseSkipReason(): string | undefined {
  try {
    execFileSync('python3', ['-c', 'import fcntl; fcntl.F_SETLEASE'], { stdio: 'pipe' });
  } catch {
    return 'python3 with fcntl.F_SETLEASE is missing';
  }
  return undefined;
}

const HOLDER = `
import fcntl, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
signal.signal(signal.SIGIO, lambda *_: print('broken', flush=True))
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
print('held', flush=True)
sys.stdin.readline()
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
os.close(fd)
`;
