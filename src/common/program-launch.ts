import { execa, ExecaError, type Options } from 'execa';

/**
 * How a program is started: the options every adapter may pass to `run()` (exec.ts). This file
 * runs in the program thread (program-worker.ts), which is the one place execa is called.
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
   * A job's data work (qemu-img, a decompressor): runs this much below the daemon's CPU priority
   * (nice; JOB_NICE), so the daemon's own thread, which answers status and SSE, is scheduled first
   * whenever the cores are busy. 0 or absent: the daemon's priority.
   */
  nice?: number;
  /**
   * Work no job waits for (the cache's expanded copies, a base's verification): the lowest CPU
   * priority (nice 19) and the lowest best-effort I/O priority, so running jobs keep the cores
   * and the disk.
   */
  background?: boolean;
  /**
   * An open descriptor the program inherits as its fd 3 (qemu-img writes a verified volume
   * through /proc/self/fd/3 instead of reopening it by name).
   */
  fd3?: number;
}

/** What a program that exited 0 printed. */
export interface ProgramResult {
  stdout: string;
  stderr: string;
}

/** How a program failed, as plain data (it crosses from the program thread). */
export interface ProgramFailure {
  message: string;
  /** execa's one-line summary (e.g. "spawnSync qemu-img ENOENT"). */
  shortMessage: string;
  exitCode?: number;
  signal?: string;
  isCanceled: boolean;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** The nice increment of background work: the lowest priority there is. */
export const BACKGROUND_NICE = 19;

/** Starts the program with execa: no shell, die-with-parent, limits and priority as asked. */
export async function launch(
  file: string,
  args: readonly string[],
  options: RunOptions,
): Promise<ProgramResult> {
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
  // setpriv --pdeathsig: the kernel kills the program if the thread that started it dies (the
  // daemon's kill -9, OOM), so no qemu-img goes on writing into a volume that the restarted daemon
  // is about to remove. prlimit: CPU seconds and address space, as OpenStack bounds qemu-img on
  // untrusted images.
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
  const priority = options.background
    ? ['nice', '-n', String(BACKGROUND_NICE), 'ionice', '-c', '2', '-n', '7']
    : options.nice
      ? ['nice', '-n', String(options.nice)]
      : [];
  const result = await execa(
    'setpriv',
    ['--pdeathsig', 'KILL', '--', ...priority, ...limit, file, ...args],
    execaOptions,
  );
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
}

function sinkInto(consume: (chunk: Uint8Array) => Promise<void>) {
  // binary: true makes execa hand over Uint8Array chunks. Yielding nothing keeps nothing.
  // eslint-disable-next-line require-yield
  return async function* (chunk: unknown): AsyncGenerator<never> {
    await consume(chunk as Uint8Array);
  };
}

/** execa's failure as plain data; anything else (a bug) keeps its message. */
export function failureOf(error: unknown): ProgramFailure {
  if (error instanceof ExecaError) {
    return {
      message: error.message,
      shortMessage: error.shortMessage,
      exitCode: error.exitCode,
      signal: error.signal,
      isCanceled: error.isCanceled,
      timedOut: error.timedOut,
      stdout: String(error.stdout ?? ''),
      stderr: String(error.stderr ?? ''),
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { message, shortMessage: message, isCanceled: false, timedOut: false, stdout: '', stderr: '' };
}
