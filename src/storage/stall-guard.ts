import type * as http from 'node:http';
import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import { pipeline, Readable, Transform } from 'node:stream';

/**
 * Read-inactivity limits for image sources (DOWNLOAD_STALL_SECONDS). Without them a server that
 * accepts the connection and then goes silent holds a job slot until JOB_TIMEOUT (an hour by
 * default): TCP keeps an idle connection open indefinitely, and neither node:http nor the minio
 * client sets a timeout of its own.
 */

/**
 * `source`, passed through, failing with `onStall()` (and destroying `source`) once no byte has
 * arrived for `ms`. Time the reader spends not reading does not count: while bytes wait in the
 * guard's buffer it is the reader (a slow disk) that holds the transfer up, not the source.
 */
export function guardStall(source: Readable, ms: number, onStall: () => Error): Readable {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      arm();
      done(null, chunk);
    },
    flush(done) {
      clearTimeout(timer);
      done();
    },
    destroy(error, done) {
      clearTimeout(timer);
      done(error);
    },
  });
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(expire, ms);
  };
  const expire = () => {
    if (guard.readableLength > 0 || guard.writableLength > 0) return arm();
    guard.destroy(onStall());
  };
  arm();
  // Errors travel both ways: a reset source fails the guard with its own error (still retryable),
  // and a stalled guard destroys the source, closing its socket.
  pipeline(source, guard, () => undefined);
  return guard;
}

/** Destroys `request` with `onStall()` unless its response headers arrive within `ms` (connect included). */
export function limitWaitForHeaders(request: ClientRequest, ms: number, onStall: () => Error): void {
  const timer = setTimeout(() => request.destroy(onStall()), ms);
  const clear = () => clearTimeout(timer);
  request.once('response', clear);
  request.once('close', clear);
}

/** The part of node:http (or node:https) a client library calls. */
type RequestModule = Pick<typeof http, 'request'>;

/**
 * An http/https module for a client library (minio) whose own requests have no timeout: each
 * request fails with `onStall(options)` when its headers do not come within `ms`, and its body
 * when no byte arrives for `ms`.
 */
export function stallLimitedTransport(
  base: RequestModule,
  ms: number,
  onStall: (options: RequestOptions, phase: 'headers' | 'body') => Error,
): RequestModule {
  // minio calls request(options, callback) only; the URL-first overloads are not needed.
  const request = (options: RequestOptions, callback?: (response: IncomingMessage) => void) => {
    const sent = base.request(options, (response) => {
      const guarded = guardStall(response, ms, () => onStall(options, 'body'));
      // The client reads status and headers from the response it is handed: keep them.
      Object.assign(guarded, { statusCode: response.statusCode, headers: response.headers });
      callback?.(guarded as unknown as IncomingMessage);
    });
    limitWaitForHeaders(sent, ms, () => onStall(options, 'headers'));
    return sent;
  };
  return { request: request as RequestModule['request'] };
}
