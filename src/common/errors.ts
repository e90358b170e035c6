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
    super(`cached image ${sha256} is being read by ${users} running job(s); delete it after they finish`);
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

/**
 * Fetching an image failed. `retryable` marks transient failures (network errors, 5xx,
 * throttling); access refused, not found or a changed object are final.
 */
export class SourceError extends JobFailure {
  constructor(
    message: string,
    details?: Record<string, unknown>,
    readonly retryable = false,
  ) {
    super('source_failed', message, details);
  }
}

/**
 * An image source that went silent: no response headers, or no bytes mid-transfer, for
 * DOWNLOAD_STALL_SECONDS. Retryable like a broken connection: a retry resumes where this try stopped.
 */
export class SourceStalledError extends SourceError {
  constructor(what: string, seconds: number, phase: 'headers' | 'body') {
    super(
      phase === 'headers'
        ? `no answer from ${what} for ${seconds} s (DOWNLOAD_STALL_SECONDS): the source stalled before sending ` +
            'its response headers; check that the server is up and reachable from this host'
        : `no data from ${what} for ${seconds} s (DOWNLOAD_STALL_SECONDS): the source stalled mid-transfer; ` +
            'check the server and the network path to it, or raise DOWNLOAD_STALL_SECONDS for a source that pauses longer',
      { url: what, stalled_seconds: seconds, stalled_before: phase === 'headers' ? 'headers' : 'data' },
      true,
    );
  }
}

/** The downloaded bytes do not hash to the expected sha256. */
export class ChecksumMismatchError extends JobFailure {
  constructor(url: string, expected: string, actual: string, origin: string) {
    super(
      'checksum_mismatch',
      `sha256 of ${url} is ${actual}, but ${origin} expects ${expected}; the download was discarded`,
      { expected_sha256: expected, actual_sha256: actual },
    );
  }
}

/** No expected checksum while REQUIRE_CHECKSUM is on, or a sidecar that cannot be read. */
export class ChecksumUnavailableError extends JobFailure {
  constructor(message: string) {
    super('checksum_unavailable', message);
  }
}

export class ImageRejectedError extends JobFailure {
  constructor(message: string, details?: Record<string, unknown>) {
    super('image_rejected', message, details);
  }
}

export class JobTimeoutError extends JobFailure {
  constructor(seconds: number) {
    super('job_timeout', `timed out after ${seconds} s of running (JOB_TIMEOUT=${seconds})`);
  }
}

export class JobCancelledError extends JobFailure {
  constructor() {
    super('job_cancelled', 'cancelled by request');
  }
}

/** The daemon died while the job was pending or running; the next start ends it (submit it again). */
export class JobInterruptedError extends JobFailure {
  constructor() {
    super('interrupted', 'interrupted by daemon restart');
  }
}

/** A program we run (qemu-img, lvcreate...) exited non-zero or was killed. */
export class CommandFailedError extends JobFailure {
  constructor(command: string, reason: string, stderrTail: string) {
    super('command_failed', `${command} ${reason}${stderrTail ? `: ${stderrTail}` : ''}`, { command });
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

/** The volume group or thin pool cannot hold the volume. */
export class InsufficientSpaceError extends JobFailure {
  constructor(where: string, neededBytes: number, freeBytes: number) {
    super(
      'insufficient_space',
      `${where} has ${freeBytes} bytes free, the volume needs ${neededBytes} bytes; free space or ask for less`,
      { needed_bytes: neededBytes, free_bytes: freeBytes },
    );
  }
}

/** The configured volume group (LVM_VOLUME_GROUP) or thin pool (LVM_THIN_POOL) is not there. */
export class StorageMissingError extends JobFailure {
  constructor(kind: 'volume group' | 'thin pool', name: string, setting: string) {
    super(
      kind === 'volume group' ? 'volume_group_missing' : 'thin_pool_missing',
      `${kind} ${name} does not exist; create it or set ${setting} to one that does`,
      { [kind === 'volume group' ? 'volume_group' : 'thin_pool']: name },
    );
  }
}

/** A name that exists in the volume group but is not a volume a VM can use (a thin pool, say). */
export class VolumeUnusableError extends JobFailure {
  constructor(where: string, message: string) {
    super('volume_unusable', message, { volume: where });
  }
}

/** Removal refused: the LV was not made by this daemon (it lacks our tag), so it is not ours to remove. */
export class NotOursError extends JobFailure {
  constructor(where: string, tag: string) {
    super('not_ours', `refusing to remove ${where}: it does not carry the tag ${tag}`, {
      volume: where,
      tag,
    });
  }
}

/** lvcreate said yes, but lvs does not list the volume: LVM's metadata and its answer disagree. */
export class VolumeMissingError extends JobFailure {
  constructor(where: string) {
    super(
      'volume_missing',
      `lvcreate reported success but ${where} is not listed; check lvs and the LVM metadata`,
      {
        volume: where,
      },
    );
  }
}

/** A running job the daemon stopped for: it had not finished within SHUTDOWN_GRACE. */
export class ShutdownCancelError extends JobFailure {
  constructor(graceSeconds: number) {
    super('shutdown', `cancelled by daemon shutdown: not finished within SHUTDOWN_GRACE=${graceSeconds} s`);
  }
}

/** A job ended, and removing what it created failed too: the operator has to look at what is left. */
export class RollbackFailedError extends JobFailure {
  constructor(reason: string, cleanupProblem: string) {
    super('rollback_failed', `${reason}; cleaning up failed too: ${cleanupProblem}`);
  }
}

/** A filesystem filled up: names the place and what to do. */
export class NoSpaceError extends JobFailure {
  constructor(where: string, doing: string) {
    super(
      'no_space',
      `no space left on the filesystem of ${where} while ${doing}; free space there and retry`,
      {
        directory: where,
      },
    );
  }
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

/** The message of anything thrown: an Error's message, else its string form. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
