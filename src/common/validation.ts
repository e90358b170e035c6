import { ArgumentMetadata, ValidationError, ValidationPipe } from '@nestjs/common';
import { FieldProblem, InvalidRequestError } from './errors';

/** Validates every body and query against its DTO; unknown fields are refused, each problem named. */
export function validationPipe(): ValidationPipe {
  return new StrictValidationPipe({
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

/**
 * class-transformer never copies an own `constructor` key onto the DTO, so the whitelist never sees
 * it and `{"constructor": "x", ...}` would be accepted with the field silently dropped. No DTO has
 * such a field: it is refused as unknown, like any other.
 */
class StrictValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (value !== null && typeof value === 'object' && Object.hasOwn(value, 'constructor')) {
      throw new InvalidRequestError([{ field: 'constructor', message: 'unknown field "constructor"' }]);
    }
    return super.transform(value, metadata);
  }
}
