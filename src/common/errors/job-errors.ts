import { JobFailure } from './domain-error';

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

/** A job crashes kept interrupting: resumed RESUME_MAX times already, it is not resumed again. */
export class ResumeLimitError extends JobFailure {
  constructor(interruptions: number, resumeMax: number) {
    super(
      'interrupted',
      `interrupted by a daemon restart ${interruptions} times, more than RESUME_MAX=${resumeMax} allows: ` +
        'not resumed again (is the daemon crashing in a loop? see its log before each start)',
      { interruptions, resume_max: resumeMax },
    );
  }
}

/** A program we run (qemu-img, lvcreate...) exited non-zero or was killed. */
export class CommandFailedError extends JobFailure {
  constructor(command: string, reason: string, stderrTail: string) {
    super('command_failed', `${command} ${reason}${stderrTail ? `: ${stderrTail}` : ''}`, { command });
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
