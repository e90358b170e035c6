import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Logger } from '@nestjs/common';
import { openDatabase } from './database';
import { WalCheckpointer } from './wal-checkpointer';

const MIB = 1024 * 1024;

async function until(what: string, probe: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('WalCheckpointer: the WAL is checkpointed by a thread of its own, never in a commit on the event loop', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lvp-wal-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const warnings: string[] = [];
  const logger = { warn: (line: { msg: string }) => warnings.push(line.msg) } as unknown as Logger;

  it('a commit past 1000 WAL pages leaves the database file as it was; the thread then moves the pages in', async () => {
    const path = join(dir, 'busy.db');
    const db = openDatabase(path);
    const checkpointer = WalCheckpointer.start(db, logger, 300);
    try {
      db.exec('CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)');
      const before = statSync(path).size;
      // 2500 pages of 4 KiB in one commit: SQLite's automatic checkpoint (1000 pages) would run
      // inside this commit, on this thread, and grow the database file by ~10 MiB at once.
      const insert = db.prepare('INSERT INTO blobs (data) VALUES (?)');
      db.transaction(() => {
        for (let i = 0; i < 2500; i++) insert.run(Buffer.alloc(4000, i % 251));
      })();
      assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 0);
      assert.ok(statSync(path).size - before < MIB, `the commit checkpointed: ${statSync(path).size} bytes`);
      assert.ok(statSync(`${path}-wal`).size > 8 * MIB, 'the rows are in the WAL');
      await until('the thread to checkpoint', () => statSync(path).size > 8 * MIB);
      assert.equal((db.prepare('SELECT COUNT(*) AS n FROM blobs').get() as { n: number }).n, 2500);
    } finally {
      await checkpointer.stop();
      db.close();
    }
    assert.equal(existsSync(`${path}-wal`), false, 'the last connection to close removed the WAL');
    assert.deepEqual(warnings, []);
  });

  it('a thread that cannot checkpoint gives the job back to SQLite (the WAL must not grow without end) and says so', async () => {
    const path = join(dir, 'gone.db');
    const db = openDatabase(path);
    // The thread opens the database by its path: gone, it cannot (the daemon's connection still can write).
    unlinkSync(path);
    const checkpointer = WalCheckpointer.start(db, logger, 300);
    try {
      await until('the warning', () => warnings.length > 0);
      assert.deepEqual(warnings, ['the job database is checkpointed on the event loop again']);
      assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000);
    } finally {
      await checkpointer.stop();
      db.close();
    }
  });
});
