import { DomainError } from './domain-error';

/** Refusals answered at the API, before or instead of a job: each maps to its HTTP status. */
export class JobNotFoundError extends DomainError {
  readonly code = 'job_not_found';
  readonly status = 404;
  constructor(jobId: string) {
    super(`no job with id ${jobId}`, { job_id: jobId });
  }
}

export class JobAlreadyFinishedError extends DomainError {
  readonly code = 'job_finished';
  readonly status = 409;
  constructor(jobId: string, status: string) {
    super(`job ${jobId} is already ${status}; only pending or running jobs can be cancelled`, {
      job_id: jobId,
      status,
    });
  }
}

export class VolumeBusyError extends DomainError {
  readonly code = 'volume_busy';
  readonly status = 409;
  constructor(volumeName: string, activeJobId: string) {
    super(`volume ${volumeName} is already being provisioned by job ${activeJobId}`, {
      volume_name: volumeName,
      active_job_id: activeJobId,
    });
  }
}

export class VolumeSizeMismatchError extends DomainError {
  readonly code = 'volume_size_mismatch';
  readonly status = 409;
  constructor(volumeName: string, existingBytes: number, requestedBytes: number) {
    super(
      `volume ${volumeName} already exists with ${existingBytes} bytes, which is not within 5 % of the requested ` +
        `${requestedBytes} bytes; remove it or request a matching size`,
      { volume_name: volumeName, existing_bytes: existingBytes, requested_bytes: requestedBytes },
    );
  }
}

export class VolumeInUseError extends DomainError {
  readonly code = 'volume_in_use';
  readonly status = 409;
  constructor(volumeName: string, holder: string) {
    super(`volume ${volumeName} is in use (${holder}); it will not be written`, { volume_name: volumeName });
  }
}

export class IdempotencyConflictError extends DomainError {
  readonly code = 'idempotency_key_reused';
  readonly status = 422;
  constructor(key: string, jobId: string) {
    super(
      `Idempotency-Key ${JSON.stringify(key)} was already used for job ${jobId} with a different request body; ` +
        'use a new key for a different request',
      { job_id: jobId },
    );
  }
}

export class ShuttingDownError extends DomainError {
  readonly code = 'shutting_down';
  readonly status = 503;
  constructor() {
    super('the daemon is shutting down and accepts no new jobs; retry after it restarts');
  }
}

export class CacheEntryNotFoundError extends DomainError {
  readonly code = 'cache_entry_not_found';
  readonly status = 404;
  constructor(sha256: string) {
    super(`no cached image with sha256 ${sha256}`);
  }
}

export class CacheEntryInUseError extends DomainError {
  readonly code = 'cache_entry_in_use';
  readonly status = 409;
  constructor(sha256: string, users: number) {
    super(
      `cached image ${sha256} is being read by ${users} running job(s) or golden base verification(s); delete it after they finish`,
    );
  }
}

export interface FieldProblem {
  field: string;
  message: string;
}

/** A request that does not meet the contract; details list each field's problem. */
export class InvalidRequestError extends DomainError {
  readonly code = 'validation_failed';
  readonly status = 400;
  constructor(readonly problems: FieldProblem[]) {
    super(problems.map((p) => p.message).join('; '), { fields: problems });
  }
}

/** A body sent as application/json that cannot be taken: not JSON, or JSON with a key refused for safety. */
export class MalformedBodyError extends DomainError {
  readonly code = 'bad_request';
  readonly status = 400;
}

/** The job database cannot be written (read-only, I/O error, disk full): answered with 503. */
export class DatabaseUnavailableError extends DomainError {
  readonly code = 'database_unavailable';
  readonly status = 503;
  constructor(path: string, sqliteCode: string) {
    super(
      `the job database ${path} cannot be written (${sqliteCode}); check the file, its filesystem and free space`,
      {
        sqlite_code: sqliteCode,
      },
    );
  }
}

/**
 * The path of a file volume is not a plain regular file in VOLUME_DIR: a symbolic link (even one
 * pointing back into VOLUME_DIR, or nowhere), a directory, a fifo, a device, a socket, a file with
 * other hard links, or a file swapped while the job opened it. Writing through it could put the
 * image into a file outside VOLUME_DIR, so nothing is written.
 */
export class VolumeNotRegularFileError extends DomainError {
  readonly code = 'volume_not_regular_file';
  readonly status = 409;
  constructor(volumeName: string, path: string, problem: string) {
    super(
      `volume ${volumeName} (${path}) is ${problem}; the file backend writes only regular files in ` +
        'VOLUME_DIR and never follows a link: remove or rename it, or choose another volume_name',
      { volume_name: volumeName, volume_path: path, problem },
    );
  }
}
