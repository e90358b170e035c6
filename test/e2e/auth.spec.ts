import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { TestCa } from '../harness/pki';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { slowQcow2, smallQcow2 } from '../fixtures/images';

const TOKEN_A = 'tok-alpha-0123456789abcdef';
const TOKEN_B = 'tok-bravo-fedcba9876543210';
const TOKEN_HASHED = 'tok-hashed-5555555555555555';
const TOKEN_NEW = 'tok-new-aaaaaaaaaaaaaaaaaaaa';

/** curl, as an operator would run it. Returns the HTTP status (0 when the connection failed). */
function curl(args: string[]): { status: number; body: string } {
  const out = spawnSync('curl', ['-s', '-o', '-', '-w', '\n%{http_code}', '--max-time', '20', ...args], {
    encoding: 'utf8',
  });
  const lines = out.stdout.trimEnd().split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n') };
}

describe('authentication: mTLS and API tokens', () => {
  const work = makeWorkdir('auth');
  const www = join(work.dir, 'www');
  const tokens = join(work.dir, 'tokens');
  let server: ImageServer;
  let daemon: Daemon;
  let ca: TestCa;
  let client: { cert: string; key: string };
  let intruder: { cert: string; key: string };
  let stranger: { cert: string; key: string };
  const body = (name: string, image = 'small.qcow2') => ({
    image_url: `${server.url}/${image}`,
    volume_name: name,
    volume_size_gb: 1,
    image_type: 'qcow2',
  });

  before(async () => {
    mkdirSync(www);
    copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
    copyFileSync(slowQcow2(), join(www, 'slow.qcow2'));
    ca = new TestCa(work.dir, 'provisioner-ca');
    const serverPair = ca.issue('127.0.0.1', 'IP:127.0.0.1', 'serverAuth');
    client = ca.issue('ci-runner', 'DNS:ci-runner.example', 'clientAuth');
    intruder = ca.issue('intruder', 'DNS:intruder.example', 'clientAuth');
    stranger = new TestCa(work.dir, 'other-ca').issue('ci-runner', 'DNS:ci-runner.example', 'clientAuth');
    writeFileSync(
      tokens,
      [
        '# tokens of this hypervisor',
        `alpha:${TOKEN_A}`,
        '',
        `bravo:${TOKEN_B}`,
        `hashed:sha256:${createHash('sha256').update(TOKEN_HASHED).digest('hex')}`,
      ].join('\n'),
      { mode: 0o600 },
    );
    server = await new ImageServer(www).start();
    daemon = await new Daemon({
      dir: work.dir,
      env: {
        TLS_CERT_FILE: serverPair.cert,
        TLS_KEY_FILE: serverPair.key,
        CLIENT_CA_CERT: ca.cert,
        ALLOWED_CLIENT_SUBJECTS: 'ci-runner,deployer',
        API_TOKENS_FILE: tokens,
        LOG_LEVEL: 'debug',
      },
    }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  const api = (path: string) => `https://127.0.0.1:${daemon.port}${path}`;
  const post = (name: string, extra: string[]) =>
    curl([
      '--cacert',
      ca.cert,
      '-H',
      'content-type: application/json',
      '-d',
      JSON.stringify(body(name)),
      ...extra,
      api('/api/v1/provision'),
    ]);

  it('accepts a client certificate from the configured CA (202)', () => {
    const response = post('vm-mtls', ['--cert', client.cert, '--key', client.key]);
    assert.equal(response.status, 202, response.body);
  });

  it('refuses a certificate from another CA (401), and no credentials at all (401)', () => {
    assert.equal(post('vm-stranger', ['--cert', stranger.cert, '--key', stranger.key]).status, 401);
    const none = post('vm-none', []);
    assert.equal(none.status, 401);
    const body = JSON.parse(none.body);
    assert.equal(body.error_code, 'unauthorized');
    assert.equal(body.code, 401, "the original's ErrorResponse: code is the HTTP status");
  });

  it('refuses a certificate from the CA that is outside ALLOWED_CLIENT_SUBJECTS (403)', () => {
    const response = post('vm-intruder', ['--cert', intruder.cert, '--key', intruder.key]);
    assert.equal(response.status, 403);
    assert.equal(JSON.parse(response.body).error_code, 'forbidden');
    assert.equal(JSON.parse(response.body).code, 403);
  });

  it('accepts tokens as Bearer and as X-API-Token, and a hashed entry; refuses a wrong one', () => {
    assert.equal(post('vm-bearer', ['-H', `authorization: Bearer ${TOKEN_A}`]).status, 202);
    assert.equal(post('vm-header', ['-H', `x-api-token: ${TOKEN_B}`]).status, 202);
    assert.equal(post('vm-hashed', ['-H', `authorization: Bearer ${TOKEN_HASHED}`]).status, 202);
    assert.equal(post('vm-wrong', ['-H', 'authorization: Bearer tok-alpha-0123456789abcdeX']).status, 401);
  });

  it('does not take a comment line, a name, or a stored hash as a token', () => {
    for (const fake of [
      '# tokens of this hypervisor',
      'alpha',
      'alpha:' + TOKEN_A,
      createHash('sha256').update(TOKEN_HASHED).digest('hex'),
    ]) {
      assert.equal(post('vm-fake', ['-H', `x-api-token: ${fake}`]).status, 401, fake);
    }
  });

  it('keeps the probes open and the API closed, over TLS 1.2 or newer only', () => {
    assert.equal(curl(['--cacert', ca.cert, api('/healthz')]).status, 200);
    assert.equal(curl(['--cacert', ca.cert, api('/api/v1/jobs')]).status, 401);
    assert.equal(curl(['--cacert', ca.cert, api('/docs/json')]).status, 401, 'Swagger follows the API rule');
    assert.equal(curl(['--cacert', ca.cert, '--tls-max', '1.1', '--tlsv1', api('/healthz')]).status, 0);
  });

  it("sends helmet's security headers on every answer: success, not found, refused", async () => {
    const headersOf = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
        const req = httpsRequest(api(path), { ca: readFileSync(ca.cert), headers }, (res) => {
          res.resume();
          resolve({ status: res.statusCode!, headers: res.headers });
        });
        req.on('error', reject);
        req.end();
      });
    const token = { authorization: `Bearer ${TOKEN_A}` };
    const answers = [
      await headersOf('/api/v1/jobs', token),
      await headersOf(`/api/v1/status/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`, token),
      await headersOf('/api/v1/jobs'),
    ];
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 404, 401],
    );
    for (const { status, headers } of answers) {
      const seen = JSON.stringify({ status, headers });
      assert.equal(headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', seen);
      assert.equal(headers['x-content-type-options'], 'nosniff', seen);
      assert.equal(headers['x-frame-options'], 'SAMEORIGIN', seen);
      assert.equal(headers['referrer-policy'], 'no-referrer', seen);
      assert.equal(headers['cross-origin-resource-policy'], 'same-origin', seen);
      assert.equal(
        headers['content-security-policy'],
        undefined,
        'no CSP: Swagger UI needs its inline script',
      );
      assert.equal(headers['x-powered-by'], undefined, seen);
    }
  });

  it('works for node https clients with a certificate too', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        api('/api/v1/jobs'),
        { ca: readFileSync(ca.cert), cert: readFileSync(client.cert), key: readFileSync(client.key) },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
  });

  it('writes an audit line with the principal for provision and cancel, and never a token', async () => {
    const submitted = post('vm-audited', ['-H', `authorization: Bearer ${TOKEN_A}`]);
    const jobId = JSON.parse(submitted.body).job_id;
    curl([
      '--cacert',
      ca.cert,
      '-X',
      'DELETE',
      '--cert',
      client.cert,
      '--key',
      client.key,
      api(`/api/v1/cancel/${jobId}`),
    ]);
    const audits = await waitFor('the audit lines', () => {
      const lines = daemon.jsonLogs().filter((l) => l.audit === true && l.job_id === jobId);
      return lines.length >= 2 ? lines : undefined;
    });
    const provision = audits.find((l) => l.action === 'provision')!;
    assert.equal(provision.principal, 'alpha');
    assert.equal(provision.status, 202);
    assert.equal(provision.remote_address, '127.0.0.1');
    const cancel = audits.find((l) => l.action === 'cancel')!;
    assert.equal(cancel.principal, 'CN=ci-runner');
    for (const secret of [TOKEN_A, TOKEN_B, TOKEN_HASHED]) {
      assert.ok(!daemon.logs.some((line) => line.includes(secret)), 'a token value reached the log');
    }
  });

  it('re-reads the token file on SIGHUP: a new token works, a removed one is refused, running jobs go on', async () => {
    const running = curl([
      '--cacert',
      ca.cert,
      '-H',
      'content-type: application/json',
      '-H',
      `authorization: Bearer ${TOKEN_A}`,
      '-d',
      JSON.stringify({ ...body('vm-hup', 'slow.qcow2'), volume_size_gb: 2 }),
      api('/api/v1/provision'),
    ]);
    const jobId = JSON.parse(running.body).job_id;
    writeFileSync(tokens, `alpha:${TOKEN_A}\nnewbie:${TOKEN_NEW}\n`, { mode: 0o600 });
    process.kill(daemon.pid, 'SIGHUP');
    await waitFor('the reload', () => daemon.logs.some((l) => l.includes('SIGHUP: reloaded')));
    assert.equal(post('vm-new', ['-H', `authorization: Bearer ${TOKEN_NEW}`]).status, 202);
    assert.equal(post('vm-removed', ['-H', `x-api-token: ${TOKEN_B}`]).status, 401);
    const final = await waitFor(
      'the job started before SIGHUP',
      async () => {
        const status = curl([
          '--cacert',
          ca.cert,
          '-H',
          `authorization: Bearer ${TOKEN_A}`,
          api(`/api/v1/status/${jobId}`),
        ]);
        const job = JSON.parse(status.body);
        return ['completed', 'failed', 'cancelled'].includes(job.status) ? job : undefined;
      },
      60_000,
      200,
    );
    assert.equal(final.status, 'completed', final.error);
  });
});

describe('safe defaults', () => {
  it('binds 127.0.0.1 only when nothing is configured', async () => {
    const work = makeWorkdir('default-bind');
    const daemon = await new Daemon({ dir: work.dir }).start();
    try {
      assert.ok(daemon.logs.some((l) => l.includes(`listening on http://127.0.0.1:${daemon.port}`)));
      assert.equal(curl([`http://127.0.0.1:${daemon.port}/healthz`]).status, 200);
      assert.equal(
        curl([`http://127.0.0.2:${daemon.port}/healthz`]).status,
        0,
        'reachable on another address',
      );
    } finally {
      await daemon.stop();
      work.cleanup();
    }
  });

  it('refuses to start on HOST=0.0.0.0 without authentication, saying how to configure it', async () => {
    const work = makeWorkdir('open-bind');
    const { code, output } = await Daemon.runToExit({ dir: work.dir, env: { HOST: '0.0.0.0' } });
    work.cleanup();
    assert.equal(code, 2);
    assert.match(output, /HOST=0\.0\.0\.0/);
    assert.match(output, /API_TOKENS_FILE/);
  });

  it('refuses to start with a group-readable token file, naming its mode', async () => {
    const work = makeWorkdir('token-mode');
    const file = join(work.dir, 'tokens');
    writeFileSync(file, `alpha:${TOKEN_A}\n`);
    chmodSync(file, 0o640);
    const { code, output } = await Daemon.runToExit({ dir: work.dir, env: { API_TOKENS_FILE: file } });
    work.cleanup();
    assert.equal(code, 1);
    assert.match(output, /mode 0640/);
    assert.ok(!output.includes(TOKEN_A));
  });

  it('answers 429 past RATE_LIMIT_PER_MINUTE POSTs from one principal', async () => {
    const work = makeWorkdir('rate');
    const daemon = await new Daemon({ dir: work.dir, env: { RATE_LIMIT_PER_MINUTE: '3' } }).start();
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        statuses.push(
          (
            await daemon.provision({
              image_url: 'http://127.0.0.1:9/x.qcow2',
              volume_name: `vm-r${i}`,
              volume_size_gb: 1,
              image_type: 'qcow2',
            })
          ).status,
        );
      }
      assert.deepEqual(statuses, [202, 202, 202, 429, 429]);
      const limited = await daemon.provision({
        image_url: 'http://127.0.0.1:9/x.qcow2',
        volume_name: 'vm-r9',
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.equal(limited.body.error_code, 'rate_limited');
      assert.equal(limited.body.code, 429);
      assert.equal(limited.body.request_id, limited.headers.get('x-request-id'));
      assert.equal((await daemon.request('GET', '/api/v1/jobs')).status, 200, 'reads are not limited');
    } finally {
      await daemon.stop();
      work.cleanup();
    }
  });
});

describe('image URLs cannot be turned against the host (SSRF)', () => {
  const work = makeWorkdir('ssrf');
  const www = join(work.dir, 'www');
  let allowed: ImageServer;
  let loopback: ImageServer;
  let daemon: Daemon;

  before(async () => {
    mkdirSync(www);
    copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
    // 127.0.0.2 stands for an allowed image server; 127.0.0.1 for the host's own services.
    allowed = await new ImageServer(www, '127.0.0.2').start();
    loopback = await new ImageServer(www, '127.0.0.1').start();
    allowed.redirects.set('/sneaky.qcow2', `${loopback.url}/small.qcow2`);
    daemon = await new Daemon({ dir: work.dir, env: { IMAGE_ALLOW_ADDRESSES: '127.0.0.2/32' } }).start();
  });

  after(async () => {
    await daemon?.stop();
    await allowed?.stop();
    await loopback?.stop();
    work.cleanup();
  });

  const submit = (url: string, name: string) =>
    daemon.provision({ image_url: url, volume_name: name, volume_size_gb: 1, image_type: 'qcow2' });

  it('serves an allowed server', async () => {
    const { body } = await submit(`${allowed.url}/small.qcow2`, 'vm-allowed');
    assert.equal((await daemon.waitFinal(body.job_id)).status, 'completed');
  });

  for (const [what, url] of [
    ['a loopback address', 'http://127.0.0.1/x.qcow2'],
    ['the metadata address', 'http://169.254.169.254/latest/meta-data/'],
    ['an IPv6 loopback', 'http://[::1]/x.qcow2'],
    // Connecting to ::ffff:0.0.0.0 reaches the host's own 127.0.0.1 services on Linux.
    ['the IPv4-mapped unspecified address', 'http://[::ffff:0.0.0.0]/x.qcow2'],
  ]) {
    it(`refuses ${what} at submit (400)`, async () => {
      const response = await submit(url, 'vm-ssrf');
      assert.equal(response.status, 400);
      assert.match(response.body.message, /IMAGE_ALLOW_ADDRESSES/);
    });
  }

  it('refuses a name that resolves to loopback, after resolving it', async () => {
    const { status, body } = await submit(
      `http://localhost:${loopback.url.split(':').pop()}/small.qcow2`,
      'vm-localhost',
    );
    assert.equal(status, 202);
    const final = await daemon.waitFinal(body.job_id);
    assert.equal(final.status, 'failed');
    assert.match(final.error, /localhost resolves to (127\.0\.0\.1|::1), a loopback address/);
    assert.equal(loopback.requests.length, 0);
  });

  it('refuses an allowed server that redirects to loopback', async () => {
    const { body } = await submit(`${allowed.url}/sneaky.qcow2`, 'vm-redirect');
    const final = await daemon.waitFinal(body.job_id);
    assert.equal(final.status, 'failed');
    assert.match(final.error, /127\.0\.0\.1, a loopback address/);
    assert.equal(loopback.requests.length, 0, 'the loopback server was reached');
  });

  it('limits image hosts to IMAGE_HOST_ALLOWLIST when set', async () => {
    const w = makeWorkdir('allowlist');
    const d = await new Daemon({
      dir: w.dir,
      env: { IMAGE_HOST_ALLOWLIST: 'images.example.com,*.mirror.example.org' },
    }).start();
    try {
      const refused = await d.provision({
        image_url: 'http://evil.example.net/x.qcow2',
        volume_name: 'vm',
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.equal(refused.status, 400);
      assert.match(refused.body.message, /not in IMAGE_HOST_ALLOWLIST/);
      const accepted = await d.provision({
        image_url: 'http://eu.mirror.example.org/x.qcow2',
        volume_name: 'vm2',
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.equal(accepted.status, 202);
    } finally {
      await d.stop();
      w.cleanup();
    }
  });
});
