/**
 * What `lvp` exits with. Scripts and Ansible branch on these, so they are part of the interface:
 * documented in `lvp --help` and the README, and never reused for something else.
 */
export const EXIT = {
  /** The job completed; or the command did what it was asked. */
  ok: 0,
  /** The job failed (its error is printed), or the daemon refused the request (its message is printed). */
  failed: 1,
  /** Wrong arguments or options; also a request the daemon rejects as invalid (400). */
  usage: 2,
  /** The job was cancelled. */
  cancelled: 3,
  /** The daemon cannot be reached or refuses the credentials (connection refused, TLS failure, 401/403). */
  unreachable: 4,
  /** Ctrl-C: lvp stopped following; the job goes on (128 + SIGINT, as shells report it). */
  detached: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0    the job completed (or the command did what it was asked)
  1    the job failed, or the daemon refused the request; the error is printed
  2    usage error: wrong arguments or options (also a request the daemon rejects as invalid, 400)
  3    the job was cancelled
  4    cannot reach or authenticate: connection refused, timeout, TLS failure, 401/403
  130  interrupted (Ctrl-C): stopped following; the job goes on and its id is printed

status/watch/provision --wait/cache prefetch --wait exit with the job's outcome: 0 completed
(or still pending/running for status), 1 failed, 3 cancelled.`;

/** The exit code that reports a job's status. */
export function exitCodeForStatus(status: string): ExitCode {
  if (status === 'failed') return EXIT.failed;
  if (status === 'cancelled') return EXIT.cancelled;
  return EXIT.ok;
}
