import type { Database, Statement } from 'better-sqlite3';

/**
 * Prepared statements by SQL text, prepared once per connection. Preparing (parsing and planning
 * the SQL) costs more than running a point query: the status endpoint under load spent 9 % of its
 * CPU in prepare() (bench P4 profile), and under the fault suite's 500 jobs prepare() and pragma()
 * were the busiest frame of 175 of the event loop's stalls over 10 ms (docs/performance.md).
 */
export class Statements {
  private readonly prepared = new Map<string, Statement>();

  constructor(private readonly db: Database) {}

  get(sql: string): Statement {
    let statement = this.prepared.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.prepared.set(sql, statement);
    }
    return statement;
  }

  /**
   * Runs `fn` with its commits at `synchronous = NORMAL`: no fsync on the event loop (the
   * connection's default is FULL). For writes a crash may lose, or that the caller makes durable
   * itself afterwards (JobRepository.flush). The setting cannot change inside a transaction.
   */
  withoutFsync<T>(fn: () => T): T {
    this.get('PRAGMA synchronous = NORMAL').run();
    try {
      return fn();
    } finally {
      this.get('PRAGMA synchronous = FULL').run();
    }
  }
}
