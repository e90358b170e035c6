import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { requestLogLevel } from './logging';

/** Probes and scrapes come every few seconds and say nothing new: they get no request line. */
const QUIET_PATHS = /^\/(health|healthz|livez|readyz|metrics)$/;

/**
 * One line per answered request ('request completed'), written from a Fastify onResponse hook at
 * the level `requestLogLevel` picks. Nothing is built for a line the level would drop, so the
 * status polls that dominate the traffic cost no logging at all at LOG_LEVEL=info.
 *
 * Not pino-http's middleware: that made a child logger and an AsyncLocalStorage scope for every
 * request, which cost more than the status route itself (bench P4 profile); the few lines logged
 * inside a request carry `request_id` explicitly.
 */
export function logRequests(fastify: FastifyInstance, logger: Logger): void {
  fastify.addHook('onResponse', async (request, reply) => {
    const level = requestLogLevel(request.method, reply.statusCode);
    if (!logger.isLevelEnabled(level)) return;
    const url = request.url;
    if (QUIET_PATHS.test(url.split('?')[0])) return;
    logger[level]({
      request_id: request.id,
      req: { method: request.method, url, remote_address: request.ip },
      res: { status_code: reply.statusCode },
      responseTime: Math.round(reply.elapsedTime),
      msg: 'request completed',
    });
  });
}
