import { execa, ExecaError, type Options, type ResultPromise } from 'execa';
import { CommandFailedError } from './errors';

/**
 * The one place that starts programs. Adapters (QemuImg, LvmCli...) call this with an argument
 * array: no shell is ever involved, so nothing in a request can become a shell word.
 */
export interface RunOptions {
  /** Aborting it kills the program (SIGTERM, then SIGKILL after 2 s). */
  signal?: AbortSignal;
  /** Wall-clock limit in ms. */
  timeoutMs?: number;
  /** Kernel limits (prlimit): CPU seconds, and for programs that parse untrusted input, address space. */
  limits?: { cpuSeconds: number; addressSpaceBytes?: number };
  /**
   * Receives stdout chunk by chunk, with backpressure (the program waits while this runs); the
   * output is not collected. (Iterating execa's stdout stream instead loses chunks whenever the
   * consumer awaits: measured here with xz -dc, 3-10 % of 64 MiB gone.)
   */
  onStdout?: (chunk: Uint8Array) => Promise<void>;
  /**
   * Work no job waits for (the cache's expanded copies): lower CPU priority (nice 10) and the
   * lowest best-effort I/O priority, so running jobs keep the cores and the disk.
   */
  background?: boolean;
  /**
   * An open descriptor the program inherits as its fd 3 (qemu-img writes a verified volume
   * through /proc/self/fd/3 instead of reopening it by name).
   */
  fd3?: number;
}

export function run(file: string, args: readonly string[], options: RunOptions = {}) {
  const execaOptions = {
    cancelSignal: options.signal,
    timeout: options.timeoutMs,
    forceKillAfterDelay: 2000,
    env: { LC_ALL: 'C' },
    maxBuffer: 16 * 1024 * 1024,
    buffer: { stdout: !options.onStdout, stderr: true },
    stdio: [
      'ignore',
      options.onStdout ? { transform: sinkInto(options.onStdout), binary: true } : 'pipe',
      'pipe',
      // execa's types list only 3-9, but any open descriptor number is handed on to spawn().
      ...(options.fd3 === undefined ? [] : [options.fd3 as 3]),
    ],
  } satisfies Options;
  // setpriv --pdeathsig: the kernel kills the program if the daemon dies (kill -9, OOM), so no
  // qemu-img goes on writing into a volume that the restarted daemon is about to remove.
  // prlimit: CPU seconds and address space, as OpenStack bounds qemu-img on untrusted images.
  const limit = options.limits
    ? // Soft CPU limit first (SIGXCPU names the cause); the hard limit a little later is SIGKILL.
      [
        'prlimit',
        `--cpu=${options.limits.cpuSeconds}:${options.limits.cpuSeconds + 5}`,
        ...(options.limits.addressSpaceBytes === undefined
          ? []
          : [`--as=${options.limits.addressSpaceBytes}`]),
        '--',
      ]
    : [];
  const priority = options.background ? ['nice', '-n', '10', 'ionice', '-c', '2', '-n', '7'] : [];
  return execa('setpriv', ['--pdeathsig', 'KILL', '--', ...priority, ...limit, file, ...args], execaOptions);
}

function sinkInto(consume: (chunk: Uint8Array) => Promise<void>) {
  // binary: true makes execa hand over Uint8Array chunks. Yielding nothing keeps nothing.
  // eslint-disable-next-line require-yield
  return async function* (chunk: unknown): AsyncGenerator<never> {
    await consume(chunk as Uint8Array);
  };
}

export type RunningCommand = ResultPromise<{ stdin: 'ignore' }>;

/** Turns execa's failure into a domain error that names the program, why it ended, and its stderr tail. */
export function commandError(label: string, error: unknown): Error {
  if (!(error instanceof ExecaError)) return error as Error;
  const stderr = String(error.stderr ?? '')
    .trim()
    .split('\n')
    .slice(-5)
    .join(' | ')
    .slice(-600);
  let reason: string;
  if (error.isCanceled) reason = 'was stopped because the job was cancelled';
  else if (error.timedOut) reason = `did not finish in time and was killed`;
  else if (error.signal === 'SIGXCPU') reason = 'used more CPU time than allowed and was killed (SIGXCPU)';
  else if (error.signal) reason = `was killed by signal ${error.signal}`;
  else if (error.exitCode !== undefined) reason = `exited with code ${error.exitCode}`;
  else reason = `could not be started (${error.shortMessage})`;
  return new CommandFailedError(label, reason, stderr);
}
