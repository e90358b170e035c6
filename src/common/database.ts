import { dirname, resolve } from 'node:path';
import { preparePrivateDir } from './private-dir';
import Database from 'better-sqlite3';

export const DATABASE = Symbol('Database');

/**
 * Schema migrations, applied in order; PRAGMA user_version records how many ran.
 * Append only: never edit a migration that has shipped.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE jobs (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     status TEXT NOT NULL,
     stage TEXT,
     stage_started_at TEXT,
     percent REAL NOT NULL DEFAULT 0,
     bytes_processed INTEGER NOT NULL DEFAULT 0,
     bytes_total INTEGER,
     kind TEXT NOT NULL DEFAULT 'provision',
     request_json TEXT NOT NULL,
     volume_name TEXT,
     idempotency_key TEXT,
     request_hash TEXT NOT NULL,
     cache_hit INTEGER NOT NULL DEFAULT 0,
     image_path TEXT,
     image_sha256 TEXT,
     checksum_verified INTEGER NOT NULL DEFAULT 0,
     volume_path TEXT,
     created_volume INTEGER NOT NULL DEFAULT 0,
     reused_volume INTEGER NOT NULL DEFAULT 0,
     error_code TEXT,
     error TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     started_at TEXT,
     finished_at TEXT
   );
   CREATE INDEX jobs_status ON jobs (status);
   CREATE INDEX jobs_volume ON jobs (volume_name);
   CREATE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
   -- At most one unfinished job per volume, whatever the code above does.
   CREATE UNIQUE INDEX jobs_one_active_per_volume ON jobs (volume_name) WHERE status IN ('pending', 'running');`,
  `CREATE TABLE cache_entries (
     sha256 TEXT PRIMARY KEY,
     size INTEGER NOT NULL,
     format TEXT NOT NULL,
     created_at TEXT NOT NULL,
     last_used_at TEXT NOT NULL,
     use_count INTEGER NOT NULL DEFAULT 0
   );
   -- The URLs (and object versions) an entry was downloaded from: a request whose source is
   -- unchanged (same URL, etag and size) is served from the cache even without a checksum.
   CREATE TABLE cache_sources (
     url TEXT NOT NULL,
     etag TEXT NOT NULL,
     size INTEGER NOT NULL,
     sha256 TEXT NOT NULL REFERENCES cache_entries (sha256) ON DELETE CASCADE,
     added_at TEXT NOT NULL,
     PRIMARY KEY (url, etag, size)
   );
   CREATE INDEX cache_sources_sha256 ON cache_sources (sha256);`,
  // Facts about the daemon itself, e.g. that the last stop was clean (pending jobs then survive).
  `CREATE TABLE daemon_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // The golden base a volume was cloned from (issue #19); NULL: the image was converted into it.
  `ALTER TABLE jobs ADD COLUMN clone_base TEXT;`,
  // How often a crash interrupted a job that then resumed, and from which byte its download went on.
  `ALTER TABLE jobs ADD COLUMN resumed INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE jobs ADD COLUMN resumed_from_bytes INTEGER;`,
];

export function openDatabase(path: string): Database.Database {
  const file = resolve(path);
  // SQLite creates its -wal, -shm and -journal files beside the database: only we may write there.
  preparePrivateDir(dirname(file), 'the directory of DB_PATH', true);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // FULL: a job transition that was reported is on disk even after a power cut.
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `database schema version ${current} is newer than this daemon knows (${MIGRATIONS.length}); ` +
        'run the newer version or restore a backup',
    );
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
