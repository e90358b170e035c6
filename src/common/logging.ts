import type { Params } from 'nestjs-pino';
import type { Settings } from '../config/settings';

/** JSON lines for journald, or pretty text for a terminal; secrets are never written. */
export function loggerOptions(settings: Settings): Params {
  return {
    pinoHttp: {
      level: settings.logLevel,
      transport:
        settings.logFormat === 'text' ? { target: 'pino-pretty', options: { singleLine: true } } : undefined,
      // The request id is chosen once by Fastify (see main.ts) and stored on the raw request.
      genReqId: (req) => (req as { id?: string }).id ?? 'unknown',
      customAttributeKeys: { reqId: 'request_id' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers["x-api-token"]', 'req.headers.cookie'],
        censor: '[redacted]',
      },
      autoLogging: { ignore: (req) => /^\/(health|healthz|livez|readyz|metrics)$/.test(req.url ?? '') },
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
