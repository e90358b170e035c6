import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { TestCa } from '../harness/pki';
import { BUCKET, S3Server } from '../harness/s3-server';
import { makeWorkdir } from '../harness/workdir';
import { smallQcow2 } from '../fixtures/images';

/**
 * MinIO behind HTTPS with a private CA: the S3 test server serves TLS with a certificate from a
 * throw-away CA. Trusted through MINIO_CA_FILE, refused (once, with the fix named) without it, and
 * accepted unverified only with MINIO_INSECURE_SKIP_VERIFY, which the daemon warns about.
 */
describe('S3 over HTTPS with a private CA', () => {
  const work = makeWorkdir('s3-tls');
  let ca: TestCa;
  let s3: S3Server;

  before(async () => {
    ca = new TestCa(work.dir, 'minio-ca');
    const serverCert = ca.issue('minio', 'IP:127.0.0.1', 'serverAuth');
    mkdirSync(join(work.dir, 's3'));
    s3 = await new S3Server(join(work.dir, 's3'), serverCert).start();
    s3.seed('small.qcow2', smallQcow2());
  });

  after(async () => {
    await s3?.stop();
    work.cleanup();
  });

  async function provisionWith(env: Record<string, string>, volume: string) {
    const dir = join(work.dir, volume);
    mkdirSync(dir);
    const daemon = await new Daemon({ dir, env: { ...s3.daemonEnv(), ...env } }).start();
    try {
      const { status, body } = await daemon.provision({
        image_url: `s3://${BUCKET}/small.qcow2`,
        volume_name: volume,
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.equal(status, 202, JSON.stringify(body));
      return { final: await daemon.waitFinal(body.job_id), daemon };
    } finally {
      await daemon.stop();
    }
  }

  it('completes when MINIO_CA_FILE names the CA that signed the endpoint certificate', async () => {
    const { final } = await provisionWith({ MINIO_CA_FILE: ca.cert }, 'vm-tls-ca');
    assert.equal(final.status, 'completed', final.error);
  });

  it('fails without the CA, once, naming the endpoint and MINIO_CA_FILE', async () => {
    const before = s3.requests.length;
    const { final } = await provisionWith({}, 'vm-tls-untrusted');
    assert.equal(final.status, 'failed');
    assert.match(final.error, /127\.0\.0\.1:\d+ presented a certificate this host does not trust/);
    assert.match(final.error, /MINIO_CA_FILE/);
    // The handshake fails before any request reaches the server, and nothing is retried.
    assert.equal(s3.requests.length, before);
  });

  it('completes unverified with MINIO_INSECURE_SKIP_VERIFY, and warns about it at start', async () => {
    const { final, daemon } = await provisionWith({ MINIO_INSECURE_SKIP_VERIFY: 'true' }, 'vm-tls-skip');
    assert.equal(final.status, 'completed', final.error);
    const warning = daemon.jsonLogs().find((l) => String(l.msg).includes('MINIO_INSECURE_SKIP_VERIFY=true'));
    assert.ok(warning, 'no warning about the unverified certificate');
    assert.equal(warning.level, 40);
  });
});
