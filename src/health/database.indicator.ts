import { messageOf } from '../common/errors';
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { Database } from 'better-sqlite3';
import { DATABASE } from '../common/database';
import { Settings } from '../config/settings';

/** How long the probe waits for a write lock someone else holds, instead of the usual 5 s. */
const PROBE_BUSY_TIMEOUT_MS = 250;

/**
 * The SQLite database can take a write: its file and directory are writable (access() says
 * EROFS on a read-only filesystem, even to root) and the write lock can be taken at once
 * (BEGIN IMMEDIATE; ROLLBACK). Nothing is written: the probe must not grow the WAL.
 * better-sqlite3 is synchronous, so the probe cannot interleave with a job's write.
 */
@Injectable()
export class DatabaseIndicator {
  private readonly file: string;

  constructor(
    settings: Settings,
    @Inject(DATABASE) private readonly db: Database,
    private readonly indicators: HealthIndicatorService,
  ) {
    this.file = resolve(settings.dbPath);
  }

  check() {
    const session = this.indicators.check('database');
    try {
      accessSync(this.file, constants.W_OK);
      accessSync(dirname(this.file), constants.W_OK);
      const previous = this.db.pragma('busy_timeout', { simple: true }) as number;
      this.db.pragma(`busy_timeout = ${PROBE_BUSY_TIMEOUT_MS}`);
      let version: number;
      try {
        this.db.exec('BEGIN IMMEDIATE');
        try {
          version = this.db.pragma('user_version', { simple: true }) as number;
        } finally {
          this.db.exec('ROLLBACK');
        }
      } finally {
        this.db.pragma(`busy_timeout = ${previous}`);
      }
      return session.up({ path: this.file, schema_version: version });
    } catch (error) {
      return session.down({
        path: this.file,
        message: `the database cannot take a write: ${messageOf(error)}`,
      });
    }
  }
}
