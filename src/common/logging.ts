import { destination, type LevelWithSilent } from 'pino';
import type { Params } from 'nestjs-pino';
import type { Options } from 'pino-http';
import type { Settings } from '../config/settings';

/**
 * Request lines: a failure is worth a warning or an error; a change (POST, DELETE) is worth an
 * info line; a successful read (status polls, listings) only at debug, so a client polling every
 * second does not write 86 400 journal lines a day per job.
 */
export function requestLogLevel(
  method: string | undefined,
  statusCode: number,
  error?: Error,
): LevelWithSilent {
  if (error || statusCode >= 500) return 'error';
  if (statusCode >= 400) return 'warn';
  return method === 'GET' || method === 'HEAD' ? 'debug' : 'info';
}

/** JSON lines for journald, or pretty text for a terminal; secrets are never written. */
export function loggerOptions(settings: Settings): Params {
  const pretty = settings.logFormat === 'text';
  const options: Options = {
    level: settings.logLevel,
    transport: pretty ? { target: 'pino-pretty', options: { singleLine: true } } : undefined,
    // The request id is chosen once by Fastify (see main.ts) and stored on the raw request.
    genReqId: (req) => (req as { id?: string }).id ?? 'unknown',
    customProps: (req) => ({ request_id: (req as { id?: string }).id }),
    customLogLevel: (req, res, error) => requestLogLevel(req.method, res.statusCode, error),
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-api-token"]', 'req.headers.cookie'],
      censor: '[redacted]',
    },
    // Middleware sees a path relative to its mount point in req.url; originalUrl is the real one.
    autoLogging: {
      ignore: (req) =>
        /^\/(health|healthz|livez|readyz|metrics)$/.test(
          (req as { originalUrl?: string }).originalUrl ?? req.url ?? '',
        ),
    },
    serializers: {
      req: (req: { id: string; method: string; url: string; remoteAddress?: string }) => ({
        method: req.method,
        url: req.url,
        remote_address: req.remoteAddress,
      }),
      // The response headers are the same security headers on every line: the status is enough.
      res: (res: { statusCode: number }) => ({ status_code: res.statusCode }),
    },
  };
  return {
    // nestjs-pino's default route ('{/*splat}' for all methods) matches nothing under Nest 12 on
    // Fastify, which would silently drop every request log line; this form matches every path.
    forRoutes: ['{*splat}'],
    // Synchronous stdout, as console.log on a pipe: when journald reads slower than we log, the
    // daemon waits instead of queueing lines in memory. pino's default (asynchronous) destination
    // held 45 MB of pending lines under a burst of 500 jobs plus pollers, and RSS grew by 340 MiB.
    pinoHttp: pretty ? options : [options, destination({ dest: 1, sync: true })],
  };
}
