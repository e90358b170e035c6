import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { datasyncFile } from './fsync';
import { WalSync } from './wal-sync';

/** A sync the test finishes by hand: each call is recorded with the way to end it. */
function manualSync() {
  const calls: { path: string; done: () => void; fail: (error: Error) => void }[] = [];
  const sync = (path: string) =>
    new Promise<void>((resolve, reject) => calls.push({ path, done: resolve, fail: reject }));
  return { calls, sync };
}

/** Which of these promises have settled, after the microtasks queued so far have run. */
async function settled(promises: Promise<unknown>[]): Promise<boolean[]> {
  const state = promises.map(() => false);
  promises.forEach((p, i) =>
    p.then(
      () => (state[i] = true),
      () => (state[i] = true),
    ),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return state;
}

describe('WalSync: one fdatasync for the callers that ask at once', () => {
  it('a caller that asks while a sync runs waits for the next one, which serves everyone who asked meanwhile', async () => {
    const { calls, sync } = manualSync();
    const wal = new WalSync('/db-wal', sync);
    const first = wal.flush();
    const during = [wal.flush(), wal.flush(), wal.flush()];
    assert.equal(calls.length, 1, 'one sync runs');
    calls[0].done();
    assert.deepEqual(
      await settled([first, ...during]),
      [true, false, false, false],
      'the later callers wait',
    );
    assert.equal(calls.length, 2, 'the next sync began when the first ended');
    const late = wal.flush(); // asked while the second runs: a third
    calls[1].done();
    assert.deepEqual(await settled([...during, late]), [true, true, true, false]);
    calls[2].done();
    assert.deepEqual(await settled([late]), [true]);
    assert.equal(wal.syncs, 3);
    assert.deepEqual(
      calls.map((c) => c.path),
      ['/db-wal', '/db-wal', '/db-wal'],
    );
  });

  it('a failed sync fails its callers; the next caller starts a new one', async () => {
    const { calls, sync } = manualSync();
    const wal = new WalSync('/db-wal', sync);
    const first = wal.flush();
    calls[0].fail(new Error('EIO'));
    await assert.rejects(first, /EIO/);
    const again = wal.flush();
    assert.equal(calls.length, 2);
    calls[1].done();
    await again;
  });

  it('fdatasyncs a real file, and a missing one is nothing to sync', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lvp-wal-sync-'));
    try {
      writeFileSync(join(dir, 'db-wal'), 'frames');
      await datasyncFile(join(dir, 'db-wal'));
      await datasyncFile(join(dir, 'absent-wal'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
