import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * The response headers helmet sets for `options`, worked out once at start-up.
 *
 * Our options make them the same on every response (no CSP nonce, nothing per request), so the
 * daemon copies this object onto each reply instead of running @fastify/helmet's two hooks and
 * helmet's middleware chain for every request: on a bare Fastify answering our status body, that
 * plugin alone took throughput from ~0.9 to ~0.53 of a hello-world (docs/performance.md, P4).
 * helmet stays the source of the header values.
 */
export function securityHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
      return response;
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  let called = false;
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error instanceof Error ? error : new Error(String(error));
    called = true;
  });
  if (!called)
    throw new Error('helmet did not finish synchronously: its headers cannot be fixed at start-up');
  return headers;
}
