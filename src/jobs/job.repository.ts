import { Inject, Injectable } from '@nestjs/common';
import type { Database, Statement } from 'better-sqlite3';
import { DATABASE } from '../common/database';
import { Statements } from '../common/statements';
import { WalSync } from '../common/wal-sync';
import { Job, JobKind, JobRequest, JobStatus, isFinal, isProvision, kindOf } from './job.model';
import type { Stage } from './pipeline/stages';

interface JobRow {
  seq: number;
  id: string;
  status: JobStatus;
  stage: Stage | null;
  stage_started_at: string | null;
  percent: number;
  bytes_processed: number;
  bytes_total: number | null;
  kind: JobKind;
  request_json: string;
  volume_name: string | null;
  idempotency_key: string | null;
  request_hash: string;
  cache_hit: number;
  image_path: string | null;
  image_sha256: string | null;
  checksum_verified: number;
  volume_path: string | null;
  created_volume: number;
  reused_volume: number;
  clone_base: string | null;
  resumed: number;
  resumed_from_bytes: number | null;
  error_code: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface NewJob {
  id: string;
  request: JobRequest;
  idempotencyKey: string | null;
  requestHash: string;
}

export interface JobQuery {
  status?: JobStatus;
  kind?: JobKind;
  volumeName?: string;
  limit: number;
  offset: number;
}

/** Jobs in SQLite. Every read of a job's state goes through here, so status survives restarts. */
@Injectable()
export class JobRepository {
  private readonly statements: Statements;
  private readonly walSync: WalSync;

  /**
   * Finished jobs never change again, and clients keep polling them: the status route's reads of
   * them come from here (half of its CPU under load went to the SQLite read, bench P4). Frozen,
   * so a caller cannot change what the next one reads; `save` forgets a job it writes.
   */
  private readonly finished = new Map<string, Job>();
  static readonly FINISHED_KEPT = 1000;

  constructor(@Inject(DATABASE) private readonly db: Database) {
    this.statements = new Statements(db);
    this.walSync = new WalSync(`${db.name}-wal`);
  }

  private statement(sql: string): Statement {
    return this.statements.get(sql);
  }

  insert(job: NewJob, now: string): Job {
    this.statement(
      `INSERT INTO jobs (id, status, percent, bytes_processed, kind, request_json, volume_name, idempotency_key,
           request_hash, created_at, updated_at)
         VALUES (?, 'pending', 0, 0, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      job.id,
      kindOf(job.request),
      JSON.stringify(job.request),
      isProvision(job.request) ? job.request.volume_name : null,
      job.idempotencyKey,
      job.requestHash,
      now,
      now,
    );
    return this.get(job.id)!;
  }

  get(id: string): Job | undefined {
    const known = this.finished.get(id);
    if (known) return known;
    const row = this.statement('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    const job = row && toJob(row);
    if (job && isFinal(job.status)) this.rememberFinished(job);
    return job;
  }

  private rememberFinished(job: Job): void {
    if (this.finished.size >= JobRepository.FINISHED_KEPT) {
      this.finished.delete(this.finished.keys().next().value!);
    }
    Object.freeze(job.request);
    this.finished.set(job.id, Object.freeze(job));
  }

  activeForVolume(volumeName: string): Job | undefined {
    const row = this.statement(
      `SELECT * FROM jobs WHERE volume_name = ? AND status IN ('pending', 'running')`,
    ).get(volumeName) as JobRow | undefined;
    return row && toJob(row);
  }

  byIdempotencyKey(key: string, since: string): Job | undefined {
    const row = this.statement(
      'SELECT * FROM jobs WHERE idempotency_key = ? AND created_at >= ? ORDER BY seq DESC LIMIT 1',
    ).get(key, since) as JobRow | undefined;
    return row && toJob(row);
  }

  withStatus(statuses: JobStatus[]): Job[] {
    const marks = statuses.map(() => '?').join(', ');
    const rows = this.statement(`SELECT * FROM jobs WHERE status IN (${marks}) ORDER BY seq`).all(
      ...statuses,
    ) as JobRow[];
    return rows.map(toJob);
  }

  list(query: JobQuery): { jobs: Job[]; total: number } {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.status) {
      where.push('status = ?');
      params.push(query.status);
    }
    if (query.kind) {
      where.push('kind = ?');
      params.push(query.kind);
    }
    if (query.volumeName) {
      where.push('volume_name = ?');
      params.push(query.volumeName);
    }
    const clause = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = (this.statement(`SELECT COUNT(*) AS n FROM jobs ${clause}`).get(...params) as { n: number })
      .n;
    const rows = this.statement(`SELECT * FROM jobs ${clause} ORDER BY seq DESC LIMIT ? OFFSET ?`).all(
      ...params,
      query.limit,
      query.offset,
    ) as JobRow[];
    return { jobs: rows.map(toJob), total };
  }

  /**
   * Makes every commit so far durable: an fdatasync of the WAL in the thread pool, off the event
   * loop (what synchronous=FULL does at each commit). A checkpoint that moved the rows into the
   * database file synced them already (SQLite does, in WAL mode, at synchronous=NORMAL). Callers
   * that ask at once share the syncs (WalSync).
   */
  flush(): Promise<void> {
    return this.walSync.flush(); // no WAL file: nothing was written since the last checkpoint
  }

  /**
   * Writes the mutable part of a job. `durable: false` commits without the fsync of
   * `synchronous = FULL`: the row survives a crash of the daemon (it is in the WAL, in the page
   * cache) and reaches the disk with the next durable commit or `flush()`. Why: an fsync here runs
   * on the event loop, and while a job's download fills the page cache, ext4 makes the WAL's
   * fsync wait for that data too: 0.66-0.93 s for a job's final save after a 1 GiB download,
   * 50 ms for a stage change (measured).
   */
  save(job: Job, durable = true): void {
    if (!durable) return this.withoutFsync(() => this.save(job));
    this.finished.delete(job.id);
    this.statement(
      `UPDATE jobs SET status = @status, stage = @stage, stage_started_at = @stageStartedAt, percent = @percent, bytes_processed = @bytesProcessed,
           bytes_total = @bytesTotal, cache_hit = @cacheHit, image_path = @imagePath, image_sha256 = @imageSha256,
           checksum_verified = @checksumVerified,
           volume_path = @volumePath, created_volume = @createdVolume, reused_volume = @reusedVolume, clone_base = @cloneBase,
           resumed = @resumed, resumed_from_bytes = @resumedFromBytes,
           error_code = @errorCode, error = @error, updated_at = @updatedAt, started_at = @startedAt,
           finished_at = @finishedAt
         WHERE id = @id`,
    ).run({
      ...job,
      cacheHit: job.cacheHit ? 1 : 0,
      checksumVerified: job.checksumVerified ? 1 : 0,
      createdVolume: job.createdVolume ? 1 : 0,
      reusedVolume: job.reusedVolume ? 1 : 0,
    });
  }

  /** A fact about the daemon kept across restarts (e.g. clean_shutdown). */
  state(key: string): string | undefined {
    const row = this.statement('SELECT value FROM daemon_state WHERE key = ?').get(key) as
      { value: string } | undefined;
    return row?.value;
  }

  setState(key: string, value: string | undefined): void {
    if (value === undefined) this.statement('DELETE FROM daemon_state WHERE key = ?').run(key);
    else
      this.statement(
        'INSERT INTO daemon_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ).run(key, value);
  }

  /**
   * Runs `fn` in one SQLite transaction (submit's checks and insert must not interleave), committed
   * without an fsync on the event loop: the caller makes it durable with `flush()`.
   */
  transaction<T>(fn: () => T): T {
    return this.withoutFsync(() => this.db.transaction(fn)());
  }

  /** Commits at `synchronous = NORMAL` (no fsync); the setting cannot change inside a transaction. */
  private withoutFsync<T>(fn: () => T): T {
    return this.statements.withoutFsync(fn);
  }
}

function toJob(row: JobRow): Job {
  return {
    id: row.id,
    seq: row.seq,
    status: row.status,
    stage: row.stage,
    stageStartedAt: row.stage_started_at,
    percent: row.percent,
    bytesProcessed: row.bytes_processed,
    bytesTotal: row.bytes_total,
    kind: row.kind,
    request: JSON.parse(row.request_json) as JobRequest,
    idempotencyKey: row.idempotency_key,
    requestHash: row.request_hash,
    cacheHit: row.cache_hit === 1,
    imagePath: row.image_path,
    imageSha256: row.image_sha256,
    checksumVerified: row.checksum_verified === 1,
    volumePath: row.volume_path,
    createdVolume: row.created_volume === 1,
    reusedVolume: row.reused_volume === 1,
    cloneBase: row.clone_base,
    resumed: row.resumed,
    resumedFromBytes: row.resumed_from_bytes,
    errorCode: row.error_code,
    error: row.error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}
