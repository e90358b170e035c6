import pino, { destination, type Logger, type LoggerOptions } from 'pino';
import type { Settings } from '../config/settings';

export type RequestLogLevel = 'error' | 'warn' | 'info' | 'debug';

/**
 * Request lines: a failure is worth a warning or an error; a change (POST, DELETE) is worth an
 * info line; a successful read (status polls, listings) only at debug, so a client polling every
 * second does not write 86 400 journal lines a day per job.
 */
export function requestLogLevel(method: string | undefined, statusCode: number): RequestLogLevel {
  if (statusCode >= 500) return 'error';
  if (statusCode >= 400) return 'warn';
  return method === 'GET' || method === 'HEAD' ? 'debug' : 'info';
}

/**
 * The daemon's one pino logger: JSON lines for journald, or pretty text for a terminal. Nest's
 * Logger writes through it (NestPinoLogger), and so do the request lines (request-log.ts).
 */
export function rootLogger(settings: Settings): Logger {
  const options: LoggerOptions = { level: settings.log.level };
  if (settings.log.format === 'text') {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { singleLine: true } } });
  }
  // Synchronous stdout, as console.log on a pipe: when journald reads slower than we log, the
  // daemon waits instead of queueing lines in memory. pino's default (asynchronous) destination
  // held 45 MB of pending lines under a burst of 500 jobs plus pollers, and RSS grew by 340 MiB.
  blockingStdout();
  return pino(options, destination({ dest: 1, sync: true }));
}

/**
 * Puts stdout (journald's socket, or a pipe) in blocking mode, so that a synchronous write that
 * finds it full waits just until the reader has taken some. Node makes stdout non-blocking once
 * anything touches `process.stdout`; pino's synchronous writer then meets EAGAIN and sleeps a
 * fixed 100 ms on the event loop before it tries again (sonic-boom's BUSY_WRITE_TIMEOUT): under
 * the fault suite's 500 jobs that was 605 ms of sleeps in the daemon's profile and the status
 * reads' slowest percent. A file or /dev/null has no handle and needs nothing.
 */
function blockingStdout(): void {
  const stream = process.stdout as unknown as { _handle?: { setBlocking?: (blocking: boolean) => number } };
  stream._handle?.setBlocking?.(true);
}
