import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openDatabase } from './database';
import { Statements } from './statements';

describe('Statements: prepared once per connection', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lvp-statements-'));
  const db = openDatabase(join(dir, 'test.db'));
  const statements = new Statements(db);
  after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const synchronous = () => db.pragma('synchronous', { simple: true });

  it('prepares a SQL text once and hands the same statement out again', () => {
    const sql = 'SELECT value FROM daemon_state WHERE key = ?';
    assert.equal(statements.get(sql), statements.get(sql));
    assert.notEqual(statements.get(sql), statements.get('SELECT key FROM daemon_state'));
  });

  it('commits without an fsync inside withoutFsync (NORMAL), and goes back to FULL after, even on a throw', () => {
    assert.equal(synchronous(), 2, 'the connection commits with an fsync (FULL) by default');
    assert.equal(
      statements.withoutFsync(() => synchronous()),
      1,
    );
    assert.equal(synchronous(), 2);
    assert.throws(() =>
      statements.withoutFsync(() => {
        throw new Error('boom');
      }),
    );
    assert.equal(synchronous(), 2);
  });
});
