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
}

export function run(file: string, args: readonly string[], options: RunOptions = {}) {
  const execaOptions = {
    cancelSignal: options.signal,
    timeout: options.timeoutMs,
    forceKillAfterDelay: 2000,
    stdin: 'ignore',
    env: { LC_ALL: 'C' },
    maxBuffer: 16 * 1024 * 1024,
  } satisfies Options;
  // setpriv --pdeathsig: the kernel kills the program if the daemon dies (kill -9, OOM), so no
  // qemu-img goes on writing into a volume that the restarted daemon is about to remove.
  return execa('setpriv', ['--pdeathsig', 'KILL', '--', file, ...args], execaOptions);
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
  else if (error.signal) reason = `was killed by signal ${error.signal}`;
  else if (error.exitCode !== undefined) reason = `exited with code ${error.exitCode}`;
  else reason = `could not be started (${error.shortMessage})`;
  return new CommandFailedError(label, reason, stderr);
}
