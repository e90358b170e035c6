import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, ClientRequest, IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { ErrorBodyDto } from '../common/error-body.dto';
import { EXIT, type ExitCode } from './exit-codes';

/** How to reach and authenticate to the daemon; the flags follow curl's. */
export interface ConnectionOptions {
  url: string;
  /** API token, sent as `Authorization: Bearer`. */
  token?: string;
  /** Client certificate (PEM); may hold the key too, as with curl. */
  cert?: string;
  /** Private key of the client certificate (PEM). */
  key?: string;
  /** CA bundle to verify the daemon's certificate with (instead of the system's). */
  cacert?: string;
  /** Do not verify the daemon's certificate (curl -k). */
  insecure?: boolean;
  /** Seconds to wait for a connection or an answer. */
  timeoutSeconds: number;
  userAgent: string;
}

/** An error that ends lvp with a given exit code and a message for the operator. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** The daemon could not be reached (refused, timed out, TLS): worth retrying while following a job. */
export class ConnectionError extends CliError {
  constructor(message: string) {
    super(message, EXIT.unreachable);
  }
}

/** The daemon answered 401/403: retrying with the same credentials cannot help. */
export class AuthError extends CliError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, EXIT.unreachable);
  }
}

/** The daemon refused the request; `body` is its error body when it sent one, `parsed` any JSON it sent. */
export class ApiError extends CliError {
  readonly body: ErrorBodyDto | undefined;

  constructor(
    readonly status: number,
    readonly parsed: unknown,
    text: string,
  ) {
    const body = isErrorBody(parsed) ? parsed : undefined;
    super(
      body
        ? `${body.message} (${[status, body.error_code].filter(Boolean).join(' ')})`
        : `HTTP ${status}: ${text.slice(0, 500)}`,
      status === 400 ? EXIT.usage : EXIT.failed,
    );
    this.body = body;
  }
}

function isErrorBody(value: unknown): value is ErrorBodyDto {
  return typeof value === 'object' && value !== null && typeof (value as ErrorBodyDto).message === 'string';
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** TLS error codes that mean "the daemon's certificate is not trusted". */
const CERT_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

/**
 * The daemon's HTTP API over node:http/https. node's own clients take a CA bundle and a client
 * certificate per agent, which the global fetch of Node 20 cannot without an extra dispatcher.
 */
export class ApiClient {
  readonly base: URL;
  private readonly agent: HttpAgent | HttpsAgent;

  constructor(private readonly options: ConnectionOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new UsageError(`--url ${options.url} is not a URL (e.g. https://hypervisor-7:8080)`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new UsageError(`--url ${options.url}: only http:// and https:// are supported`);
    }
    if (options.key && !options.cert) throw new UsageError('--key needs --cert (the client certificate)');
    this.base = base;
    if (base.protocol === 'https:') {
      this.agent = new HttpsAgent({
        ca: options.cacert ? readPem('--cacert', options.cacert) : undefined,
        cert: options.cert ? readPem('--cert', options.cert) : undefined,
        // As with curl, the key may sit in the certificate file.
        key: options.cert
          ? readPem(options.key ? '--key' : '--cert', options.key ?? options.cert)
          : undefined,
        rejectUnauthorized: !options.insecure,
      });
    } else {
      // curl ignores TLS flags for http:// too; the daemon would not see them anyway.
      this.agent = new HttpAgent();
    }
  }

  /** A JSON request. Resolves with 2xx answers; anything else becomes the matching CliError. */
  async json<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const response = await this.send(
      method,
      path,
      {
        accept: 'application/json',
        ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      payload,
    );
    const text = await readText(response);
    const status = response.statusCode!;
    if (status < 200 || status >= 300) throw this.refusal(status, text);
    return { status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  /**
   * Opens a request and resolves with the response once its headers arrive (for streams).
   * `signal` aborts it. Network and TLS failures become ConnectionError.
   */
  open(
    method: string,
    path: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
    body?: string,
  ): Promise<{ response: IncomingMessage; request: ClientRequest }> {
    return new Promise((resolve, reject) => {
      const url = this.urlFor(path);
      const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
        method,
        agent: this.agent,
        signal,
        headers: {
          'user-agent': this.options.userAgent,
          ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
          ...headers,
        },
      });
      request.setTimeout(this.options.timeoutSeconds * 1000, () =>
        request.destroy(Object.assign(new Error('timeout'), { code: 'LVP_TIMEOUT' })),
      );
      request.once('response', (response) => {
        // The timeout covered connecting and the answer's headers; a stream's idle time is the caller's.
        request.setTimeout(0);
        resolve({ response, request });
      });
      // Not once: a socket can fail again after the answer began, and an unheard 'error' would crash lvp.
      request.on('error', (error: NodeJS.ErrnoException) => reject(this.describe(error)));
      request.end(body);
    });
  }

  /** `path` (with its query) under the base URL, which may carry a prefix from a reverse proxy. */
  urlFor(path: string): URL {
    return new URL(this.base.origin + this.base.pathname.replace(/\/+$/, '') + path);
  }

  /** The CliError for a non-2xx answer. */
  refusal(status: number, text: string): CliError {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (a proxy's page?): the text is reported
    }
    if (status === 401 || status === 403) {
      const why = isErrorBody(parsed) ? parsed.message : `HTTP ${status}`;
      return new AuthError(
        `${this.base.origin} refused the credentials: ${why} (${status}); ` +
          'give a token with --token/LVP_TOKEN or a client certificate with --cert/--key',
        status,
      );
    }
    return new ApiError(status, parsed, text);
  }

  private async send(method: string, path: string, headers: Record<string, string>, body?: string) {
    return (await this.open(method, path, headers, undefined, body)).response;
  }

  /** An operator-facing message for a failed connection. */
  private describe(error: NodeJS.ErrnoException): CliError {
    if (error.name === 'AbortError') return new ConnectionError('aborted');
    const where = this.base.origin;
    const code = error.code ?? '';
    if (code === 'ECONNREFUSED') {
      return new ConnectionError(
        `cannot reach ${where}: connection refused (is the daemon running? --url/LVP_URL)`,
      );
    }
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return new ConnectionError(`cannot reach ${where}: host ${this.base.hostname} not found`);
    }
    if (code === 'LVP_TIMEOUT' || code === 'ETIMEDOUT') {
      return new ConnectionError(
        `no answer from ${where} within ${this.options.timeoutSeconds} s (--timeout)`,
      );
    }
    if (CERT_ERRORS.has(code)) {
      return new ConnectionError(
        `TLS: cannot verify the certificate of ${where}: ${error.message} ` +
          '(give the CA that signed it with --cacert/LVP_CACERT)',
      );
    }
    if (code.startsWith('ERR_SSL') || code === 'EPROTO' || /ssl|tls/i.test(error.message)) {
      return new ConnectionError(`TLS handshake with ${where} failed: ${error.message}`);
    }
    if (code === 'ECONNRESET' || code === 'EPIPE') {
      return new ConnectionError(
        `${where} closed the connection (${code})` +
          (this.base.protocol === 'http:' ? '; does the daemon speak https?' : ''),
      );
    }
    return new ConnectionError(`cannot reach ${where}: ${error.message}`);
  }
}

/** The whole body of an answer (the daemon's answers are small JSON documents). */
export function readText(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) response.destroy(new Error(`answer larger than ${MAX_BODY_BYTES} bytes`));
      else chunks.push(chunk);
    });
    response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.on('error', reject);
  });
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`cannot read ${flag} ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}
