import type { LoggerService } from '@nestjs/common';
import type { Level, Logger } from 'pino';

/**
 * Nest's LoggerService over one pino logger: what `new Logger(Context)` in a service writes ends
 * up as one JSON line with `context` beside the fields it logged.
 *
 * Ours rather than nestjs-pino's: every nestjs-pino release that accepts NestJS 12 (5.x) requires
 * Node >= 22.12, and the daemon runs on Node 20.19+. The daemon used only this part of it (its
 * request middleware was mounted on no route, see request-log.ts), so the contract is kept here:
 * nestjs-pino's Logger.call, which this mirrors, made the same lines.
 */
export class NestPinoLogger implements LoggerService {
  constructor(readonly root: Logger) {}

  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }
  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  /**
   * Nest passes the context (the name given to `new Logger(...)`) as the last parameter; what
   * comes between the message and it is printf arguments for pino. An object message becomes the
   * line's fields (`msg` included when it has one); an Error goes under `err`, which pino
   * serializes with its stack.
   */
  private write(level: Level, message: unknown, params: unknown[]): void {
    const fields: Record<string, unknown> = {};
    let args = params;
    if (params.length > 0) {
      fields.context = params[params.length - 1];
      args = params.slice(0, -1);
    }
    if (message instanceof Error) {
      fields.err = message;
      this.root[level](fields, ...(args as []));
    } else if (typeof message === 'object' && message !== null) {
      Object.assign(fields, message);
      this.root[level](fields, ...(args as []));
    } else if (isNestStackContract(level, message, args)) {
      // Nest's own exception handlers call error(message, stack, context): keep the stack as an
      // error's, not as a printf argument pino would drop.
      const err = new Error(message as string);
      err.stack = args[0] as string;
      this.root[level]({ ...fields, err });
    } else {
      this.root[level](fields, String(message), ...args);
    }
  }
}

function isNestStackContract(level: Level, message: unknown, args: unknown[]): boolean {
  return (
    level === 'error' &&
    typeof message === 'string' &&
    args.length === 1 &&
    typeof args[0] === 'string' &&
    /\n\s*at /.test(args[0])
  );
}
