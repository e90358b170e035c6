import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DatabaseUnavailableError, DomainError } from './errors';

/** Maps every error to the one body (ErrorBody below). */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  /** `databasePath` names the SQLite file in "cannot write the database" answers. */
  constructor(private readonly databasePath?: string) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<FastifyReply>();
    const request = http.getRequest<FastifyRequest>();
    if (reply.sent || reply.raw.headersSent) return;
    const { status, body } = toErrorBody(exception, String(request.id), this.databasePath);
    if (status >= 500) this.logger.error({ err: exception, request_id: request.id, msg: body.message });
    void reply.status(status).header('content-type', 'application/json; charset=utf-8').send(body);
  }
}

/**
 * The one error body. `error`, `message` and `code` (the HTTP status, an integer) are the original
 * Go service's ErrorResponse: its clients decode `Code int`, so a string there broke every error for
 * them. Our stable machine code sits beside them as `error_code`, as in a job's status.
 */
export interface ErrorBody {
  error: string;
  message: string;
  code: number;
  error_code: string;
  request_id: string;
  details?: unknown;
}

/** `error` is the kind in words (`job_not_found` → "job not found", the original's own wording). */
export function errorBody(
  status: number,
  errorCode: string,
  message: string,
  requestId: string,
  details?: unknown,
): ErrorBody {
  return {
    error: errorCode.replace(/_/g, ' '),
    message,
    code: status,
    error_code: errorCode,
    request_id: requestId,
    ...(details === undefined ? {} : { details }),
  };
}

export function toErrorBody(
  exception: unknown,
  requestId: string,
  databasePath = 'DB_PATH',
): { status: number; body: ErrorBody } {
  const sqlite = asSqliteError(exception, databasePath);
  if (sqlite) exception = sqlite;
  if (exception instanceof DomainError) {
    const { status, code, message, details } = exception;
    return { status, body: errorBody(status, code, message, requestId, details) };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const response = exception.getResponse() as string | { message?: unknown; error?: string };
    const messages =
      typeof response === 'string' ? [response] : [response.message ?? exception.message].flat();
    return { status, body: errorBody(status, httpCode(status), messages.map(String).join('; '), requestId) };
  }
  const fastifyError = exception as { statusCode?: number; code?: string; message?: string };
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode < 500) {
    const status = fastifyError.statusCode;
    return {
      status,
      body: errorBody(status, httpCode(status), fastifyError.message ?? 'bad request', requestId),
    };
  }
  return {
    status: 500,
    body: errorBody(
      500,
      'internal_error',
      'internal error; see the daemon log for this request id',
      requestId,
    ),
  };
}

function httpCode(status: number): string {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 409:
      return 'conflict';
    case 413:
      return 'body_too_large';
    case 415:
      return 'unsupported_media_type';
    case 422:
      return 'unprocessable';
    case 429:
      return 'rate_limited';
    case 503:
      return 'unavailable';
    default:
      return `http_${status}`;
  }
}

/** better-sqlite3's errors that mean "cannot write the database" become a 503 that says so. */
function asSqliteError(exception: unknown, databasePath: string): DatabaseUnavailableError | undefined {
  const code = (exception as { code?: unknown })?.code;
  if ((exception as Error)?.name !== 'SqliteError' || typeof code !== 'string') return undefined;
  if (!/^SQLITE_(READONLY|IOERR|FULL|CANTOPEN|PERM|BUSY|LOCKED|CORRUPT)/.test(code)) return undefined;
  return new DatabaseUnavailableError(databasePath, code);
}
