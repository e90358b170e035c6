import { CommandFailedError } from './errors';
import type { ProgramResult, RunOptions } from './program-launch';
import { ProgramFailed, ProgramThread } from './program-thread';

export type { ProgramResult, RunOptions } from './program-launch';
export { BACKGROUND_NICE } from './program-launch';
export { ProgramFailed } from './program-thread';

const programs = new ProgramThread();

/**
 * The one place that starts programs. Adapters (QemuImg, LvmCli...) call this with an argument
 * array: no shell is ever involved, so nothing in a request can become a shell word. The program
 * is started from the daemon's program thread (program-thread.ts), never from the event loop;
 * it runs under setpriv's die-with-parent signal, with the limits and priority asked for
 * (program-launch.ts). Resolves with its output when it exits 0; rejects with ProgramFailed.
 */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<ProgramResult> {
  return programs.run(file, args, options);
}

/** Turns a program's failure into a domain error that names the program, why it ended, and its stderr tail. */
export function commandError(label: string, error: unknown): Error {
  if (!(error instanceof ProgramFailed)) return error as Error;
  const stderr = error.stderr.trim().split('\n').slice(-5).join(' | ').slice(-600);
  let reason: string;
  if (error.isCanceled) reason = 'was stopped because the job was cancelled';
  else if (error.timedOut) reason = `did not finish in time and was killed`;
  else if (error.signal === 'SIGXCPU') reason = 'used more CPU time than allowed and was killed (SIGXCPU)';
  else if (error.signal) reason = `was killed by signal ${error.signal}`;
  else if (error.exitCode !== undefined) reason = `exited with code ${error.exitCode}`;
  else reason = `could not be started (${error.shortMessage})`;
  return new CommandFailedError(label, reason, stderr);
}
