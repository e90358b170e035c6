import { Inject, Injectable } from '@nestjs/common';
import type { Database } from 'better-sqlite3';
import { DATABASE } from '../common/database';
import { Statements } from '../common/statements';

export interface CacheEntry {
  sha256: string;
  size: number;
  format: string;
  createdAt: string;
  lastUsedAt: string;
  useCount: number;
  sources: { url: string; etag: string }[];
}

interface EntryRow {
  sha256: string;
  size: number;
  format: string;
  created_at: string;
  last_used_at: string;
  use_count: number;
}

/** The cache index in SQLite: one row per stored image, plus the source versions it came from. */
@Injectable()
export class CacheRepository {
  private readonly statements: Statements;

  constructor(@Inject(DATABASE) private readonly db: Database) {
    this.statements = new Statements(db);
  }

  get(sha256: string): CacheEntry | undefined {
    const row = this.statements.get('SELECT * FROM cache_entries WHERE sha256 = ?').get(sha256) as
      EntryRow | undefined;
    return row && this.toEntry(row);
  }

  /** The entry downloaded from this exact object version, if any. */
  bySource(url: string, etag: string, size: number): CacheEntry | undefined {
    const row = this.statements
      .get(
        `SELECT e.* FROM cache_sources s JOIN cache_entries e ON e.sha256 = s.sha256
         WHERE s.url = ? AND s.etag = ? AND s.size = ?`,
      )
      .get(url, etag, size) as EntryRow | undefined;
    return row && this.toEntry(row);
  }

  all(): CacheEntry[] {
    const rows = this.statements
      .get('SELECT * FROM cache_entries ORDER BY last_used_at DESC')
      .all() as EntryRow[];
    return rows.map((row) => this.toEntry(row));
  }

  /** Records a stored image (or another source of an image already stored). */
  add(
    entry: { sha256: string; size: number; format: string; url: string; etag?: string },
    now: string,
  ): void {
    this.db.transaction(() => {
      this.statements
        .get(
          `INSERT INTO cache_entries (sha256, size, format, created_at, last_used_at, use_count)
           VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (sha256) DO NOTHING`,
        )
        .run(entry.sha256, entry.size, entry.format, now, now);
      if (entry.etag) {
        this.statements
          .get(
            `INSERT INTO cache_sources (url, etag, size, sha256, added_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (url, etag, size) DO UPDATE SET sha256 = excluded.sha256, added_at = excluded.added_at`,
          )
          .run(entry.url, entry.etag, entry.size, entry.sha256, now);
      }
    })();
  }

  /**
   * Counts a use (eviction goes by last use). Committed without an fsync: every warm job touches its
   * image, and a use a power cut forgets only changes which image is evicted first.
   */
  touch(sha256: string, now: string): void {
    this.statements.withoutFsync(() =>
      this.statements
        .get('UPDATE cache_entries SET last_used_at = ?, use_count = use_count + 1 WHERE sha256 = ?')
        .run(now, sha256),
    );
  }

  remove(sha256: string): void {
    this.statements.get('DELETE FROM cache_entries WHERE sha256 = ?').run(sha256);
  }

  private toEntry(row: EntryRow): CacheEntry {
    const sources = this.statements
      .get('SELECT url, etag FROM cache_sources WHERE sha256 = ? ORDER BY added_at')
      .all(row.sha256) as { url: string; etag: string }[];
    return {
      sha256: row.sha256,
      size: row.size,
      format: row.format,
      createdAt: row.created_at,
      lastUsedAt: row.last_used_at,
      useCount: row.use_count,
      sources,
    };
  }
}
