import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { makeWorkdir } from '../harness/workdir';
import { smallQcow2 } from '../fixtures/images';

/**
 * LIBVIRT_POOL: after writing a volume the daemon runs `virsh pool-refresh`. Real virsh, talking to
 * libvirt's built-in test driver (test:///default, in-process, no libvirtd), whose one pool is
 * "default-pool". A refresh that fails is logged and never fails the job.
 */
describe('libvirt pool refresh (virsh against test:///default)', () => {
  const work = makeWorkdir('virsh');
  const www = join(work.dir, 'www');
  let server: ImageServer;

  before(async () => {
    mkdirSync(www);
    copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
    server = await new ImageServer(www).start();
  });

  after(async () => {
    await server?.stop();
    work.cleanup();
  });

  async function provisionWithPool(pool: string, volume: string): Promise<Daemon> {
    const daemon = await new Daemon({
      dir: work.dir,
      env: { LIBVIRT_POOL: pool, LIBVIRT_DEFAULT_URI: 'test:///default' },
    }).start();
    try {
      const { body } = await daemon.provision({
        image_url: `${server.url}/small.qcow2`,
        volume_name: volume,
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.equal((await daemon.waitFinal(body.job_id)).status, 'completed');
    } finally {
      await daemon.stop();
    }
    return daemon;
  }

  it('refreshes an existing pool without a complaint', async () => {
    const daemon = await provisionWithPool('default-pool', 'vm-pool-ok');
    const complaints = daemon
      .jsonLogs()
      .filter((l) => l.msg === 'libvirt pool refresh failed (the volume is fine)');
    assert.deepEqual(complaints, []);
  });

  it("completes the job and logs virsh's reason when the pool does not exist", async () => {
    const daemon = await provisionWithPool('no-such-pool', 'vm-pool-missing');
    const complaint = daemon
      .jsonLogs()
      .find((l) => l.msg === 'libvirt pool refresh failed (the volume is fine)');
    assert.ok(complaint, 'no "libvirt pool refresh failed" line');
    assert.equal(complaint.volume_name, 'vm-pool-missing');
    assert.equal(complaint.level, 40);
    assert.equal(complaint.pool, 'no-such-pool');
    assert.match(String(complaint.error), /no storage pool with matching name 'no-such-pool'/);
  });
});
