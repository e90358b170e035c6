import { Agent as HttpAgent, IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import { SourceError, SourceStalledError } from '../common/errors';
import type { VettedAddress } from './address-rules';
import { guardStall, limitWaitForHeaders } from './stall-guard';

export interface HttpGetOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  signal: AbortSignal;
  /** For https: a private CA, or no verification (see S3 settings). */
  httpsAgent?: HttpsAgent;
  /** Redirects followed at most (each one is a new request). */
  maxRedirects?: number;
  /** Checks each URL (the first and every redirect) and says which address to connect to. */
  vet?: (url: URL) => Promise<VettedAddress>;
  /**
   * Seconds the server may send nothing (before its headers, or between bytes of the body) before
   * the request fails with a retryable SourceStalledError (DOWNLOAD_STALL_SECONDS).
   */
  stallSeconds: number;
  /** How errors name the request: a presigned URL must not put its signature in a job's error. */
  label?: string;
}

export interface HttpGetResult {
  status: number;
  headers: IncomingMessage['headers'];
  body: Readable;
  /** The URL that answered, after redirects. */
  url: URL;
}

const plainAgent = new HttpAgent({ keepAlive: true });
const defaultHttpsAgent = new HttpsAgent({ keepAlive: true });

/** Network errors worth a retry: the server or the path to it had a moment. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

/**
 * One HTTP(S) request whose body is a stream (never buffered), following redirects.
 * Network failures become a SourceError marked retryable when they are transient.
 */
export async function httpGet(url: URL, options: HttpGetOptions): Promise<HttpGetResult> {
  let current = url;
  for (let redirects = 0; ; redirects++) {
    const response = await once(current, options);
    const location = response.headers.location;
    if (response.statusCode! >= 300 && response.statusCode! < 400 && location) {
      response.resume();
      if (redirects >= (options.maxRedirects ?? 5)) {
        throw new SourceError(`${url.href} redirected more than ${options.maxRedirects ?? 5} times`, {
          url: url.href,
        });
      }
      current = new URL(location, current);
      if (current.protocol !== 'http:' && current.protocol !== 'https:') {
        throw new SourceError(`${url.href} redirected to an unsupported scheme: ${current.protocol}`);
      }
      continue;
    }
    const label = options.label ?? current.href;
    const body = guardStall(
      response,
      options.stallSeconds * 1000,
      () => new SourceStalledError(label, options.stallSeconds, 'body'),
    );
    return { status: response.statusCode!, headers: response.headers, body, url: current };
  }
}

async function once(url: URL, options: HttpGetOptions): Promise<IncomingMessage> {
  const vetted = options.vet ? await options.vet(url) : undefined;
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const request = (secure ? httpsRequest : httpRequest)(url, {
      method: options.method ?? 'GET',
      headers: { 'user-agent': 'libvirt-volume-provisioner', ...options.headers },
      // A vetted request connects to the address that was checked, on a fresh connection.
      agent: vetted ? false : secure ? (options.httpsAgent ?? defaultHttpsAgent) : plainAgent,
      lookup: vetted ? pinnedLookup(vetted) : undefined,
      signal: options.signal,
    });
    limitWaitForHeaders(
      request,
      options.stallSeconds * 1000,
      () => new SourceStalledError(options.label ?? url.href, options.stallSeconds, 'headers'),
    );
    request.on('response', resolve);
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (error.name === 'AbortError' || error instanceof SourceStalledError) return reject(error);
      const code = error.code ?? error.message;
      reject(
        new SourceError(
          `cannot reach ${url.origin}: ${code}`,
          { url: url.href, error: code },
          TRANSIENT_CODES.has(error.code ?? ''),
        ),
      );
    });
    request.end();
  });
}

/** A dns.lookup replacement that answers with the one address already checked. */
function pinnedLookup(vetted: VettedAddress): LookupFunction {
  return ((_host: string, opts: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (opts?.all) callback(null, [{ address: vetted.address, family: vetted.family }]);
    else callback(null, vetted.address, vetted.family);
  }) as unknown as LookupFunction;
}

/** Whether an HTTP status is worth a retry: server errors and throttling. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** A final error for a non-success answer, with a hint an operator can act on. */
export function statusError(url: string, status: number, what = 'answered'): SourceError {
  const hint =
    status === 404
      ? ': the image does not exist at this URL'
      : status === 401 || status === 403
        ? ': access was refused; check the credentials and the object policy'
        : isRetryableStatus(status)
          ? ': the server had a problem'
          : '';
  return new SourceError(
    `${url} ${what} HTTP ${status}${hint}`,
    { url, http_status: status },
    isRetryableStatus(status),
  );
}
