import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { slowQcow2, smallQcow2, smallRaw } from '../fixtures/images';

const GIB = 1024 ** 3;

describe('API errors: each refusal is specific, and nothing changes on disk', () => {
  const work = makeWorkdir('errors');
  const images = join(work.dir, 'www');
  const volumes = join(work.dir, 'var/volumes');
  let server: ImageServer;
  let daemon: Daemon;
  const valid = () => ({
    image_url: `${server.url}/small.qcow2`,
    volume_name: 'vm-ok',
    volume_size_gb: 1,
    image_type: 'qcow2',
  });

  before(async () => {
    mkdirSync(images);
    copyFileSync(smallQcow2(), join(images, 'small.qcow2'));
    copyFileSync(smallRaw(), join(images, 'small.raw'));
    copyFileSync(slowQcow2(), join(images, 'slow.qcow2'));
    server = await new ImageServer(images).start();
    daemon = await new Daemon({ dir: work.dir }).start();
  });

  after(async () => {
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  const badRequests: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'an unknown scheme',
      { image_url: 'ftp://host/x.qcow2' },
      'image_url',
      /unsupported scheme "ftp:".*http:\/\/, https:\/\//,
    ],
    ['a URL that is not one', { image_url: 'not a url' }, 'image_url', /not a valid URL/],
    [
      'credentials in the URL',
      { image_url: 'http://u:p@127.0.0.1/x' },
      'image_url',
      /must not carry credentials/,
    ],
    ['a name starting with "-"', { volume_name: '-vm' }, 'volume_name', /must not start with '-'/],
    ['the name "."', { volume_name: '.' }, 'volume_name', /must not be '\.' or '\.\.'/],
    ['the name ".."', { volume_name: '..' }, 'volume_name', /must not be '\.' or '\.\.'/],
    ['a name with a slash', { volume_name: '../etc/passwd' }, 'volume_name', /only letters, digits/],
    ['a name of 128 characters', { volume_name: 'a'.repeat(128) }, 'volume_name', /at most 127 characters/],
    ['a snapshot name', { volume_name: 'snapshot-1' }, 'volume_name', /snapshot/],
    ['a name with a pvmove part', { volume_name: 'pvmove0' }, 'volume_name', /pvmove/],
    ['a reserved LVM suffix', { volume_name: 'vm_tmeta' }, 'volume_name', /_tmeta/],
    ['size 0', { volume_size_gb: 0 }, 'volume_size_gb', /positive integer/],
    ['a negative size', { volume_size_gb: -5 }, 'volume_size_gb', /positive integer/],
    ['a fractional size', { volume_size_gb: 1.5 }, 'volume_size_gb', /positive integer/],
    ['a size given as text', { volume_size_gb: '10' }, 'volume_size_gb', /positive integer/],
    ['an absurd size', { volume_size_gb: 10_000_000 }, 'volume_size_gb', /must not exceed/],
    [
      'an unsupported image_type',
      { image_type: 'iso' },
      'image_type',
      /one of: qcow2, raw, vmdk, vhdx, vpc, vdi, auto/,
    ],
    ['an unknown field', { colour: 'blue' }, 'colour', /unknown field "colour"/],
    ['a missing field', { volume_name: undefined }, 'volume_name', /volume_name/],
  ];

  for (const [what, change, field, message] of badRequests) {
    it(`refuses ${what} with 400 naming ${field}`, async () => {
      const response = await daemon.provision({ ...valid(), ...change });
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error_code, 'validation_failed');
      const problem = response.body.details.fields.find((f: { field: string }) => f.field === field);
      assert.ok(problem, `no problem reported for ${field}: ${JSON.stringify(response.body)}`);
      assert.match(problem.message, message);
      assert.equal(response.body.request_id, response.headers.get('x-request-id'));
    });
  }

  it('refuses a size over MAX_VOLUME_SIZE_GB with 400', async () => {
    const response = await daemon.provision({ ...valid(), volume_size_gb: 70_000 });
    assert.equal(response.status, 400);
    assert.match(response.body.message, /MAX_VOLUME_SIZE_GB/);
  });

  it('refuses malformed JSON with 400 in the same error shape, quoting the syntax error', async () => {
    const response = await daemon.request('POST', '/api/v1/provision', '{"image_url": ');
    assert.equal(response.status, 400);
    assert.equal(response.body.error_code, 'bad_request');
    assert.equal(response.body.code, 400);
    assert.match(response.body.message, /^the body is not valid JSON: .*JSON/);
    assert.ok(response.body.request_id);
  });

  const pollutingBodies: [string, string, RegExp][] = [
    ['a "__proto__" key', '{"__proto__": {"admin": true}}', /has a "__proto__" key at \$:/],
    [
      'a "constructor" object with a "prototype" key',
      '{"constructor": {"prototype": {"admin": true}}}',
      /has a "constructor" object with a "prototype" key at \$\.constructor:/,
    ],
  ];
  for (const [what, extra, message] of pollutingBodies) {
    it(`refuses well-formed JSON with ${what}, saying what and why (not "not valid JSON")`, async () => {
      const body = JSON.stringify(valid()).replace(/^\{/, `${extra.slice(0, -1)}, `);
      JSON.parse(body); // well-formed: only the key is the problem
      const response = await daemon.request('POST', '/api/v1/provision', body);
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error_code, 'bad_request');
      assert.equal(response.body.code, 400);
      assert.match(response.body.message, /^the body is valid JSON but /);
      assert.match(response.body.message, message);
      assert.match(response.body.message, /prototype pollution/);
      assert.doesNotMatch(response.body.message, /not valid JSON/);
    });
  }

  it('refuses a plain "constructor" field as unknown instead of dropping it', async () => {
    const body = JSON.stringify({ constructor: 'x', ...valid() });
    const response = await daemon.request('POST', '/api/v1/provision', body);
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.equal(response.body.error_code, 'validation_failed');
    assert.deepEqual(response.body.details.fields, [
      { field: 'constructor', message: 'unknown field "constructor"' },
    ]);
  });

  it('refuses a body over 16 KiB with 413', async () => {
    const response = await daemon.provision({ ...valid(), correlation_id: 'x'.repeat(20_000) });
    assert.equal(response.status, 413);
    assert.equal(response.body.error_code, 'body_too_large');
  });

  it('refuses a body that is not JSON with 415', async () => {
    const response = await fetch(`${daemon.url}/api/v1/provision`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'image_url=http://x/y&volume_name=vm',
    });
    assert.equal(response.status, 415);
    const body = (await response.json()) as { code: number; error_code: string };
    assert.equal(body.error_code, 'unsupported_media_type');
    assert.equal(body.code, 415);
  });

  it('left no volume and no job behind after the refused requests', async () => {
    assert.deepEqual(existsSync(volumes) ? readdirSync(volumes) : [], []);
    const { body } = await daemon.request('GET', '/api/v1/jobs');
    assert.equal(body.total, 0);
  });

  it("keeps the caller's X-Request-ID and makes one when none is given", async () => {
    const given = await daemon.request('GET', '/api/v1/jobs', undefined, { 'x-request-id': 'trace-42' });
    assert.equal(given.headers.get('x-request-id'), 'trace-42');
    const made = await daemon.request('GET', '/api/v1/jobs');
    assert.match(made.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
    const line = await waitFor('the request log line', () =>
      daemon.jsonLogs().find((l) => l.request_id === 'trace-42' && l.msg === 'request completed'),
    );
    assert.equal((line.req as { url: string }).url, '/api/v1/jobs');
  });

  for (const [method, path] of [
    ['GET', '/api/v1/status/'],
    ['DELETE', '/api/v1/cancel/'],
    ['GET', '/api/v1/jobs/'],
    ['GET', '/api/v1/jobs/%s/events'],
  ]) {
    it(`answers 404 for an unknown job on ${method} ${path}`, async () => {
      const id = '0b5e4a59-2a43-4c1e-9a43-3c9d0c3b1f00';
      const url = path.includes('%s') ? path.replace('%s', id) : path + id;
      const response = await daemon.request(method, url);
      assert.equal(response.status, 404);
      assert.equal(response.body.error_code, 'job_not_found');
      assert.match(response.body.message, new RegExp(id));
      const malformed = await daemon.request(
        method,
        path.includes('%s') ? path.replace('%s', 'nope') : `${path}nope`,
      );
      assert.equal(malformed.status, 404);
    });
  }

  it('answers 409 naming the active job when the volume is already being provisioned', async () => {
    const first = await daemon.provision({
      ...valid(),
      image_url: `${server.url}/slow.qcow2`,
      volume_name: 'vm-busy',
      volume_size_gb: 2,
    });
    assert.equal(first.status, 202);
    const second = await daemon.provision({ ...valid(), volume_name: 'vm-busy', volume_size_gb: 2 });
    assert.equal(second.status, 409);
    assert.equal(second.body.error_code, 'volume_busy');
    assert.match(second.body.message, new RegExp(first.body.job_id));
    assert.equal(second.body.details.active_job_id, first.body.job_id);
    await daemon.request('DELETE', `/api/v1/cancel/${first.body.job_id}`);
  });

  it('answers 409 with both sizes when an existing volume is more than 5 % off', async () => {
    mkdirSync(volumes, { recursive: true });
    const path = join(volumes, 'vm-small.raw');
    copyFileSync(smallRaw(), path);
    truncateSync(path, 2 * GIB);
    const response = await daemon.provision({ ...valid(), volume_name: 'vm-small', volume_size_gb: 3 });
    assert.equal(response.status, 409);
    assert.equal(response.body.error_code, 'volume_size_mismatch');
    assert.match(response.body.message, new RegExp(`${2 * GIB} bytes.*${3 * GIB} bytes`));
    assert.ok(existsSync(path), 'the existing volume must stay');
  });

  it('answers 409 when cancelling a job that has finished', async () => {
    const submitted = await daemon.provision({ ...valid(), volume_name: 'vm-done' });
    const final = await daemon.waitFinal(submitted.body.job_id);
    assert.equal(final.status, 'completed', final.error);
    const response = await daemon.request('DELETE', `/api/v1/cancel/${submitted.body.job_id}`);
    assert.equal(response.status, 409);
    assert.equal(response.body.error_code, 'job_finished');
    assert.match(response.body.message, /already completed/);
  });

  describe('Idempotency-Key', () => {
    it('returns the earlier job with 200 when the same key comes with the same body', async () => {
      const body = { ...valid(), volume_name: 'vm-idem' };
      const first = await daemon.provision(body, { 'idempotency-key': 'key-1' });
      assert.equal(first.status, 202);
      // Same fields in another order: still the same request.
      const reordered = Object.fromEntries(Object.entries(body).reverse());
      const again = await daemon.provision(reordered, { 'idempotency-key': 'key-1' });
      assert.equal(again.status, 200);
      assert.equal(again.body.job_id, first.body.job_id);
      await daemon.waitFinal(first.body.job_id);
      const list = await daemon.request('GET', '/api/v1/jobs?volume=vm-idem');
      assert.equal(list.body.total, 1);
    });

    it('refuses the same key with a different body with 422', async () => {
      const response = await daemon.provision(
        { ...valid(), volume_name: 'vm-other' },
        { 'idempotency-key': 'key-1' },
      );
      assert.equal(response.status, 422);
      assert.equal(response.body.error_code, 'idempotency_key_reused');
    });

    it('never deduplicates on correlation_id', async () => {
      const a = await daemon.provision({ ...valid(), volume_name: 'vm-c1', correlation_id: 'same' });
      const b = await daemon.provision({ ...valid(), volume_name: 'vm-c2', correlation_id: 'same' });
      assert.equal(a.status, 202);
      assert.equal(b.status, 202);
      assert.notEqual(a.body.job_id, b.body.job_id);
      await daemon.waitFinal(a.body.job_id);
      await daemon.waitFinal(b.body.job_id);
    });
  });

  describe('an image that is not what image_type says fails before any volume exists', () => {
    for (const [file, declared, detected] of [
      ['small.raw', 'qcow2', 'raw'],
      ['small.qcow2', 'raw', 'qcow2'],
    ]) {
      it(`${file} declared as ${declared}`, async () => {
        const name = `vm-mismatch-${declared}`;
        const submitted = await daemon.provision({
          ...valid(),
          image_url: `${server.url}/${file}`,
          image_type: declared,
          volume_name: name,
        });
        const final = await daemon.waitFinal(submitted.body.job_id);
        assert.equal(final.status, 'failed');
        assert.equal(final.error_code, 'image_rejected');
        assert.match(final.error, new RegExp(`is ${detected}, but the request says image_type ${declared}`));
        assert.equal(final.progress.stage, 'inspecting');
        assert.ok(!existsSync(join(volumes, `${name}.raw`)), 'a volume was created for a rejected image');
      });
    }
  });

  it('lists jobs newest first, filtered and paginated', async () => {
    const all = await daemon.request('GET', '/api/v1/jobs?limit=500');
    const created = all.body.jobs.map((j: { created_at: string }) => j.created_at);
    assert.deepEqual(created, [...created].sort().reverse());
    const page = await daemon.request('GET', '/api/v1/jobs?limit=2&offset=1');
    assert.equal(page.body.jobs.length, 2);
    assert.equal(page.body.jobs[0].job_id, all.body.jobs[1].job_id);
    const failed = await daemon.request('GET', '/api/v1/jobs?status=failed');
    assert.ok(failed.body.jobs.length >= 2);
    assert.ok(failed.body.jobs.every((j: { status: string }) => j.status === 'failed'));
    const bad = await daemon.request('GET', '/api/v1/jobs?status=weird');
    assert.equal(bad.status, 400);
  });
});
