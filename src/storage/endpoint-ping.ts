import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** TLS options of a ping: the same CA and verification the downloads use. */
export interface PingTls {
  ca?: Buffer;
  rejectUnauthorized: boolean;
}

/**
 * One HEAD request to `url` on a connection of its own (no keep-alive agent, so a dead endpoint is
 * not hidden behind a pooled socket). Any HTTP answer counts as reachable — S3 says 403 to an
 * anonymous request: this is about the network path and TLS, not credentials. Rejects with the
 * reason when nothing answers within `timeoutMs`.
 */
export function pingEndpoint(url: string, tls: PingTls | undefined, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const request = (secure ? httpsRequest : httpRequest)(url, {
      method: 'HEAD',
      signal: AbortSignal.timeout(timeoutMs),
      agent: false,
      ...(secure && tls ? tls : {}),
    });
    request.on('response', (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      const timedOut = error.name === 'AbortError' || error.name === 'TimeoutError';
      reject(new Error(timedOut ? `no answer within ${timeoutMs} ms` : error.message));
    });
    request.end();
  });
}
