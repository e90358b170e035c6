import { ValidationError, ValidationPipe } from '@nestjs/common';
import { FieldProblem, InvalidRequestError } from './errors';

/** Validates every body and query against its DTO; unknown fields are refused, each problem named. */
export function validationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: true,
    exceptionFactory: (errors) => new InvalidRequestError(errors.flatMap((e) => problems(e))),
  });
}

function problems(error: ValidationError, prefix = ''): FieldProblem[] {
  const field = prefix + error.property;
  const own = Object.values(error.constraints ?? {}).map((message) => ({
    field,
    message: message.startsWith('property ') ? `unknown field "${field}"` : message,
  }));
  return [...own, ...(error.children ?? []).flatMap((child) => problems(child, `${field}.`))];
}
