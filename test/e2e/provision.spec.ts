import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, copyFileSync, mkdirSync, openSync, readSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { readSse } from '../harness/sse';
import { makeWorkdir } from '../harness/workdir';
import { STAGES } from '../../src/jobs/pipeline/stages';
import { rawReference, sameBytes, smallQcow2, smallRaw } from '../fixtures/images';

const GIB = 1024 ** 3;

describe('provisioning into a file volume through the HTTP API', () => {
  const work = makeWorkdir('provision');
  const images = join(work.dir, 'www');
  let server: ImageServer;
  let daemon: Daemon;

  before(async () => {
    mkdirSync(images);
    copyFileSync(smallQcow2(), join(images, 'small.qcow2'));
    copyFileSync(smallRaw(), join(images, 'small.raw'));
    // A second name for the same bytes: a URL the cache has not seen, so it is downloaded.
    copyFileSync(smallQcow2(), join(images, 'fresh.qcow2'));
    server = await new ImageServer(images).start();
    daemon = await new Daemon({ dir: work.dir }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  it('writes a qcow2 image byte-exact into a new volume of the requested size', async () => {
    const submitted = await daemon.provision({
      image_url: `${server.url}/small.qcow2`,
      volume_name: 'vm-web-1',
      volume_size_gb: 1,
      image_type: 'qcow2',
      correlation_id: 'deploy-1',
    });
    assert.equal(submitted.status, 202);
    assert.match(submitted.body.job_id, /^[0-9a-f-]{36}$/);
    const final = await daemon.waitFinal(submitted.body.job_id);
    assert.equal(final.status, 'completed', final.error);
    assert.equal(final.correlation_id, 'deploy-1');
    assert.equal(final.progress.percent, 100);
    assert.equal(final.cache_hit, false);
    assert.match(final.image_sha256, /^[0-9a-f]{64}$/);
    assert.equal(
      final.image_sha256,
      execFileSync('sha256sum', [join(images, 'small.qcow2')])
        .toString()
        .slice(0, 64),
    );

    const volume = join(work.dir, 'var/volumes/vm-web-1.raw');
    assert.equal(final.volume_path, volume);
    assert.equal(statSync(volume).size, 1 * GIB);
    const reference = rawReference(join(images, 'small.qcow2'), 'qcow2', work.dir);
    truncateSync(reference, 1 * GIB);
    assert.ok(sameBytes(volume, reference), 'volume differs from qemu-img convert -O raw of the image');
  });

  it('writes a raw image byte-exact', async () => {
    const submitted = await daemon.provision({
      image_url: `${server.url}/small.raw`,
      volume_name: 'vm-raw',
      volume_size_gb: 1,
      image_type: 'raw',
    });
    const final = await daemon.waitFinal(submitted.body.job_id);
    assert.equal(final.status, 'completed', final.error);
    const reference = join(work.dir, 'raw-ref');
    copyFileSync(join(images, 'small.raw'), reference);
    truncateSync(reference, 1 * GIB);
    assert.ok(sameBytes(join(work.dir, 'var/volumes/vm-raw.raw'), reference));
  });

  it('streams the stages in order over SSE with a percent that never goes down, ending completed', async () => {
    server.bytesPerSecond = 16 * 1024 * 1024; // a few hundred ms of downloading to watch
    try {
      const submitted = await daemon.provision({
        image_url: `${server.url}/fresh.qcow2`,
        volume_name: 'vm-sse',
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      const stream = readSse(`${daemon.url}/api/v1/jobs/${submitted.body.job_id}/events`);
      const { events, status, headers } = await stream.done;
      assert.equal(status, 200);
      assert.match(String(headers['content-type']), /^text\/event-stream/);
      assert.ok(headers['x-request-id']);
      assert.equal(events[0].event, 'state');
      assert.equal(events.at(-1)!.event, 'end');
      assert.equal(events.at(-1)!.data.status, 'completed');
      // A cold qcow2 is written while it downloads (STREAM_CONVERT=auto, the default): the
      // download's progress comes in stage `streaming`, with the write's beside it.
      const streaming = events.filter((e) => e.event === 'progress' && e.data.progress.stage === 'streaming');
      assert.ok(
        streaming.some((e) => e.data.progress.bytes_processed < e.data.progress.bytes_total),
        'progress while the download was under way',
      );
      assert.ok(
        streaming.every((e) => e.data.progress.write_bytes_total === 64 * 1024 * 1024),
        'each streaming event carries the write counters',
      );

      const stages = events.map((e) => e.data.progress.stage).filter((s, i, all) => s && s !== all[i - 1]);
      const indexes = stages.map((s) => STAGES.indexOf(s));
      assert.deepEqual(
        [...indexes].sort((a, b) => a - b),
        indexes,
        `stages out of order: ${stages.join(' → ')}`,
      );
      assert.deepEqual(
        stages.filter((s) => s !== 'resolve' && s !== 'checking_cache'),
        ['downloading', 'streaming', 'finalizing'],
      );
      const percents = events.map((e) => e.data.progress.percent);
      for (let i = 1; i < percents.length; i++) {
        assert.ok(percents[i] >= percents[i - 1], `percent went down: ${percents.join(', ')}`);
      }
      const ids = events.map((e) => Number(e.id));
      assert.deepEqual(
        ids,
        ids.map((_, i) => i + 1),
      );
    } finally {
      server.bytesPerSecond = 0;
    }
  });

  it('sends the final state and closes at once when the job has already finished', async () => {
    const { body } = await daemon.request('GET', '/api/v1/jobs?status=completed&limit=1');
    const { events } = await readSse(`${daemon.url}/api/v1/jobs/${body.jobs[0].job_id}/events`).done;
    assert.deepEqual(
      events.map((e) => e.event),
      ['state', 'end'],
    );
  });

  it('reuses an existing volume within 5 % of the requested size and clears what the image does not cover', async () => {
    const volume = join(work.dir, 'var/volumes/vm-reuse.raw');
    // A 1 GiB + 3 % volume full of old data.
    const size = Math.round(1.03 * GIB);
    execFileSync(
      'dd',
      ['if=/dev/zero', `of=${volume}`, 'bs=1M', 'count=0', `seek=${Math.ceil(size / 2 ** 20)}`],
      { stdio: 'ignore' },
    );
    truncateSync(volume, size);
    execFileSync('sh', [
      '-c',
      'yes OLDDATA | head -c 4194304 | dd of="$1" bs=1M seek=900 conv=notrunc status=none',
      'sh',
      volume,
    ]);
    execFileSync('sh', [
      '-c',
      'yes OLDDATA | head -c 4194304 | dd of="$1" bs=1M seek=10 conv=notrunc status=none',
      'sh',
      volume,
    ]);

    const submitted = await daemon.provision({
      image_url: `${server.url}/small.qcow2`,
      volume_name: 'vm-reuse',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    const final = await daemon.waitFinal(submitted.body.job_id);
    assert.equal(final.status, 'completed', final.error);
    assert.equal(final.volume_reused, true);
    assert.equal(statSync(volume).size, size, 'a reused volume keeps its size');
    const reference = rawReference(join(images, 'small.qcow2'), 'qcow2', work.dir);
    truncateSync(reference, size);
    assert.ok(sameBytes(volume, reference), 'old data survived in the reused volume');
  });

  it('refuses with 409 volume_in_use a file volume another process holds open, naming it, and writes it once freed', async () => {
    const volume = join(work.dir, 'var/volumes/vm-running.raw');
    execFileSync('truncate', ['-s', '1G', volume]);
    // A process holding the disk file open, as the qemu of a running VM does.
    const fd = openSync(volume, 'r+');
    const holder = spawn('sleep', ['60'], { stdio: [fd, 'ignore', 'ignore'] });
    closeSync(fd);
    const request = {
      image_url: `${server.url}/small.qcow2`,
      volume_name: 'vm-running',
      volume_size_gb: 1,
      image_type: 'qcow2',
    };
    try {
      const head = () => {
        const buffer = Buffer.alloc(65536);
        const reader = openSync(volume, 'r');
        readSync(reader, buffer, 0, buffer.length, 0);
        closeSync(reader);
        return buffer;
      };
      const before = head();
      const refused = await daemon.provision(request);
      assert.equal(refused.status, 409, JSON.stringify(refused.body));
      assert.equal(refused.body.error_code, 'volume_in_use');
      assert.match(refused.body.message, new RegExp(`process ${holder.pid} \\(sleep\\)`));
      assert.deepEqual(head(), before);
    } finally {
      holder.kill();
      await once(holder, 'exit');
    }
    const accepted = await daemon.provision(request);
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    assert.equal((await daemon.waitFinal(accepted.body.job_id)).status, 'completed');
  });
});
