import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { makeWorkdir } from '../harness/workdir';
import { smallQcow2 } from '../fixtures/images';

type Line = Record<string, any>;

/**
 * A job's log lines, captured from real runs: a cache miss with a correlation id and a presigned-
 * style URL (its query string must not be logged), then a cache hit without a correlation id.
 */
describe("a job's story in the log", () => {
  const work = makeWorkdir('job-log');
  const www = join(work.dir, 'www');
  const signature = 'X-Signature=not-for-the-journal';
  let server: ImageServer;
  let daemon: Daemon;
  let missId: string;
  let hitId: string;

  before(async () => {
    mkdirSync(www);
    copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
    server = await new ImageServer(www).start();
    daemon = await new Daemon({ dir: work.dir, env: { LOG_LEVEL: 'info' } }).start();
    // Half a second of download: the write begins while it goes on (an 8 MB image from a local
    // server at full speed can be in the cache before the job opens it, and is then converted).
    server.bytesPerSecond = 16 * 1024 * 1024;
    const miss = await daemon.provision({
      image_url: `${server.url}/small.qcow2?${signature}`,
      volume_name: 'vm-log-miss',
      volume_size_gb: 1,
      image_type: 'qcow2',
      correlation_id: 'ticket-4711',
    });
    assert.equal(miss.status, 202, JSON.stringify(miss.body));
    missId = miss.body.job_id;
    assert.equal((await daemon.waitFinal(missId)).status, 'completed');
    server.bytesPerSecond = 0;
    // The same URL: the cache knows it by URL, ETag and size (no checksum given).
    const hit = await daemon.provision({
      image_url: `${server.url}/small.qcow2?${signature}`,
      volume_name: 'vm-log-hit',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    hitId = hit.body.job_id;
    assert.equal((await daemon.waitFinal(hitId)).status, 'completed');
    await daemon.stop();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  // The job's own lines; the audit line of its POST also names the job but belongs to the request.
  const linesOf = (id: string): Line[] =>
    (daemon.jsonLogs() as Line[]).filter((l) => l.job_id === id && !l.audit);

  it('tells a cache miss as a handful of lines, in order, each with job_id, correlation_id, volume_name', () => {
    const lines = linesOf(missId);
    const msgs = lines.map((l) => l.msg);
    // A cold qcow2 is written while it downloads (STREAM_CONVERT=auto, the default). The download
    // ends somewhere while the image is written: its line may come before or after `volume created`.
    assert.deepEqual(
      msgs.filter((m) => m !== 'download done'),
      [
        'job accepted',
        'job started',
        'cache miss: downloading',
        'write path: streaming (the image is written while it downloads)',
        'volume created',
        'image written to the volume while it downloaded',
        'job completed',
      ],
    );
    const doneAt = msgs.indexOf('download done');
    assert.ok(
      doneAt > msgs.indexOf('cache miss: downloading') &&
        doneAt < msgs.indexOf('image written to the volume while it downloaded'),
      msgs.join(' | '),
    );
    for (const line of lines) {
      assert.equal(line.correlation_id, 'ticket-4711', JSON.stringify(line));
      assert.equal(line.volume_name, 'vm-log-miss', JSON.stringify(line));
    }
    const byMsg = Object.fromEntries(lines.map((l) => [l.msg, l]));
    assert.ok(byMsg['download done'].bytes > 0);
    assert.match(byMsg['download done'].sha256, /^[0-9a-f]{64}$/);
    assert.equal(typeof byMsg['download done'].bytes_per_second, 'number');
    // The line says which path ran, and what it had checked when the write began.
    const path = byMsg['write path: streaming (the image is written while it downloads)'];
    assert.deepEqual(
      [path.write_path, path.format, path.virtual_size],
      ['streaming', 'qcow2', 64 * 1024 * 1024],
    );
    assert.equal(path.checked_once_whole, 'sha256, footer, qemu-img check');
    assert.match(byMsg['volume created'].volume_path, /vm-log-miss/);
    // The test's VOLUME_DIR has no reflinks (ext4): the line says why the volume is not a clone.
    assert.equal(byMsg['volume created'].clone, false);
    assert.match(byMsg['volume created'].no_clone_because, /reflink copies.*; converting$/);
    const written = byMsg['image written to the volume while it downloaded'];
    assert.equal(written.virtual_size, path.virtual_size);
    assert.ok(Date.parse(written.download_ended_at) > 0, JSON.stringify(written));
    assert.equal(byMsg['job completed'].status, 'completed');
    assert.equal(typeof byMsg['job completed'].duration_seconds, 'number');
  });

  it('tells a cache hit without a download, and carries correlation_id null when none was given', () => {
    const lines = linesOf(hitId);
    assert.deepEqual(
      lines.map((l) => l.msg),
      [
        'job accepted',
        'job started',
        'cache hit',
        'write path: download, then convert',
        'image inspected: safe to open',
        'volume created',
        'image written to the volume',
        'job completed',
      ],
    );
    // A cache hit has nothing to overlap: the line says so.
    const path = lines.find((l) => l.msg === 'write path: download, then convert')!;
    assert.deepEqual([path.write_path, path.reason], ['download_then_convert', 'cache hit']);
    for (const line of lines) {
      assert.ok('correlation_id' in line && line.correlation_id === null, JSON.stringify(line));
      assert.equal(line.volume_name, 'vm-log-hit');
    }
  });

  it('ties only the accepting line to the request; the job runs outside any request', () => {
    for (const id of [missId, hitId]) {
      const [accepted, ...rest] = linesOf(id);
      assert.ok(accepted.request_id, JSON.stringify(accepted));
      for (const line of rest) assert.equal(line.request_id, undefined, JSON.stringify(line));
    }
  });

  it('never logs the query string of an image URL', () => {
    const leaked = daemon.logs.filter((l) => l.includes('not-for-the-journal'));
    assert.deepEqual(leaked, []);
    const accepted = linesOf(missId)[0];
    assert.equal(accepted.image_url, `${server.url}/small.qcow2?…`);
  });

  it('logs a successful status poll at debug, not info', () => {
    const polls = (daemon.jsonLogs() as Line[]).filter((l) => l.req?.url?.startsWith('/api/v1/status/'));
    assert.deepEqual(polls, []);
    const posts = (daemon.jsonLogs() as Line[]).filter((l) => l.req?.method === 'POST' && l.res);
    assert.equal(posts.length, 2);
    assert.equal(posts[0].res.status_code, 202);
  });
});
