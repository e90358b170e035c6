/**
 * Domain errors: each carries a stable machine code, the HTTP status it maps to, and a message
 * written for the operator who reads it. The exception filter turns them into the one error body.
 */
export abstract class DomainError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;
  constructor(
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A job stage failed in a way the operator must fix (bad image, unreachable source...). */
export class JobFailure extends DomainError {
  readonly status = 500;
  constructor(
    readonly code: string,
    message: string,
    details?: Record<string, unknown>,
  ) {
    super(message, details);
  }
}

/** The message of anything thrown: an Error's message, else its string form. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
