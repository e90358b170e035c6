/**
 * Every domain error of the daemon, in one place: each has a stable `code`, an HTTP status and a
 * message for the operator. The exception filter turns them into the one error body.
 */
export * from './domain-error';
export * from './request-errors';
export * from './job-errors';
export * from './storage-errors';
