import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openDatabase } from '../common/database';
import { JobRepository } from './job.repository';

describe('job repository: finished jobs read from memory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lvp-jobrepo-'));
  const db = openDatabase(join(dir, 'jobs.db'));
  const repository = new JobRepository(db);
  after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const request = {
    image_url: 'http://h/i.qcow2',
    volume_name: 'vm-1',
    volume_size_gb: 1,
    image_type: 'qcow2',
  };
  const now = new Date().toISOString();

  it('reads a running job from the database every time', () => {
    const job = repository.insert(
      { id: 'job-1', request: request as never, idempotencyKey: null, requestHash: 'h' },
      now,
    );
    repository.save({ ...job, status: 'running', percent: 10 });
    assert.equal(repository.get('job-1')!.percent, 10);
    db.prepare('UPDATE jobs SET percent = 20 WHERE id = ?').run('job-1');
    assert.equal(repository.get('job-1')!.percent, 20, 'not served from memory while running');
  });

  it('a progress save (durable: false) is written, and the connection is back to synchronous=FULL after it', () => {
    const FULL = 2;
    assert.equal(db.pragma('synchronous', { simple: true }), FULL);
    repository.save({ ...repository.get('job-1')!, percent: 30 }, false);
    assert.equal(repository.get('job-1')!.percent, 30);
    assert.equal(db.pragma('synchronous', { simple: true }), FULL, 'the next status change is fsynced');
  });

  it('flush() fsyncs the WAL the progress save went to', async () => {
    assert.ok(existsSync(`${db.name}-wal`), 'the database runs in WAL mode');
    await repository.flush();
  });

  it('serves a finished job from memory, frozen, and forgets it when it is saved again', () => {
    repository.save({ ...repository.get('job-1')!, status: 'completed', percent: 100, finishedAt: now });
    const first = repository.get('job-1')!;
    assert.equal(first.status, 'completed');
    db.prepare('UPDATE jobs SET error = ? WHERE id = ?').run('changed behind our back', 'job-1');
    assert.equal(repository.get('job-1'), first, 'the second read came from memory');
    assert.throws(() => ((first as { percent: number }).percent = 5), TypeError);
    assert.throws(() => ((first.request as { volume_name: string }).volume_name = 'x'), TypeError);
    repository.save({ ...first, error: 'saved again' });
    assert.equal(repository.get('job-1')!.error, 'saved again');
  });

  it(`keeps at most ${JobRepository.FINISHED_KEPT} finished jobs in memory`, () => {
    const count = JobRepository.FINISHED_KEPT + 5;
    for (let i = 0; i < count; i++) {
      const job = repository.insert(
        {
          id: `bulk-${i}`,
          request: { ...request, volume_name: `vm-b${i}` } as never,
          idempotencyKey: null,
          requestHash: 'h',
        },
        now,
      );
      repository.save({ ...job, status: 'failed' });
      repository.get(job.id);
    }
    db.prepare('UPDATE jobs SET error = ? WHERE id = ?').run('from the database', 'bulk-0');
    assert.equal(repository.get('bulk-0')!.error, 'from the database', 'the oldest was let go');
    assert.equal(repository.get(`bulk-${count - 1}`)!.status, 'failed');
  });
});
