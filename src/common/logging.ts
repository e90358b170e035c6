import { destination } from 'pino';
import type { Params } from 'nestjs-pino';
import type { Options } from 'pino-http';
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
 * JSON lines for journald, or pretty text for a terminal. nestjs-pino supplies the logger behind
 * Nest's Logger; request lines are written by `logRequests` (request-log.ts), not by its pino-http
 * middleware, which is mounted on no route.
 */
export function loggerOptions(settings: Settings): Params {
  const pretty = settings.log.format === 'text';
  const options: Options = {
    level: settings.log.level,
    transport: pretty ? { target: 'pino-pretty', options: { singleLine: true } } : undefined,
  };
  return {
    // No route: the middleware would make a child logger and an AsyncLocalStorage scope for every
    // request (see request-log.ts). nestjs-pino builds its root logger without it.
    forRoutes: [],
    // Synchronous stdout, as console.log on a pipe: when journald reads slower than we log, the
    // daemon waits instead of queueing lines in memory. pino's default (asynchronous) destination
    // held 45 MB of pending lines under a burst of 500 jobs plus pollers, and RSS grew by 340 MiB.
    pinoHttp: pretty ? options : [options, destination({ dest: 1, sync: true })],
  };
}
