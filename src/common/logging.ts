import type { Params } from 'nestjs-pino';
import type { Settings } from '../config/settings';

/** JSON lines for journald, or pretty text for a terminal; secrets are never written. */
export function loggerOptions(settings: Settings): Params {
  return {
    // nestjs-pino's default route ('{/*splat}' for all methods) matches nothing under Nest 12 on
    // Fastify, which would silently drop every request log line; this form matches every path.
    forRoutes: ['{*splat}'],
    pinoHttp: {
      level: settings.logLevel,
      transport:
        settings.logFormat === 'text' ? { target: 'pino-pretty', options: { singleLine: true } } : undefined,
      // The request id is chosen once by Fastify (see main.ts) and stored on the raw request.
      genReqId: (req) => (req as { id?: string }).id ?? 'unknown',
      customProps: (req) => ({ request_id: (req as { id?: string }).id }),
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
      },
    },
  };
}
