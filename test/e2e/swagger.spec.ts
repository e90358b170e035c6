import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { Daemon } from '../harness/daemon';
import { makeWorkdir } from '../harness/workdir';

const CHROMIUM = '/usr/bin/chromium';

describe('Swagger UI and the OpenAPI document', () => {
  const work = makeWorkdir('swagger');
  let daemon: Daemon;
  let browser: Browser | undefined;

  before(async () => {
    daemon = await new Daemon({ dir: work.dir }).start();
  });

  after(async () => {
    await browser?.close();
    await daemon?.stop();
    work.cleanup();
  });

  it('serves an OpenAPI document generated from the DTOs at /docs/json', async () => {
    const { status, body } = await daemon.request('GET', '/docs/json');
    assert.equal(status, 200);
    assert.match(body.openapi, /^3\./);
    assert.ok(body.paths['/api/v1/provision'].post);
    assert.ok(body.paths['/api/v1/status/{job_id}'].get);
    assert.ok(body.paths['/api/v1/cancel/{job_id}'].delete);
    assert.ok(body.paths['/api/v1/jobs/{job_id}/events'].get);
    const request = body.components.schemas.ProvisionRequestDto;
    assert.deepEqual([...request.required].sort(), [
      'image_type',
      'image_url',
      'volume_name',
      'volume_size_gb',
    ]);
    assert.deepEqual(request.properties.image_type.enum, [
      'qcow2',
      'raw',
      'vmdk',
      'vhdx',
      'vpc',
      'vdi',
      'auto',
    ]);
    // The original service's ErrorResponse types: a Go client decodes `Code int`.
    const error = body.components.schemas.ErrorBodyDto;
    assert.equal(error.properties.code.type, 'integer');
    assert.equal(error.properties.error.type, 'string');
    assert.equal(error.properties.error_code.type, 'string');
    assert.deepEqual([...error.required].sort(), ['code', 'error', 'error_code', 'message', 'request_id']);
    assert.equal(body.components.schemas.JobStatusDto.properties.correlation_id.nullable, undefined);
  });

  it('lists the provision, status and cancel operations in a real headless browser', async () => {
    assert.ok(existsSync(CHROMIUM), 'Debian chromium is required (.ci/run installs it)');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = await browser.newPage();
    await page.goto(`${daemon.url}/docs`);
    await page.waitForSelector('.opblock', { timeout: 20_000 });
    const operations = await page.$$eval('.opblock-summary', (nodes) =>
      nodes.map((n) => (n.textContent ?? '').replace(/\s+/g, ' ')),
    );
    const text = operations.join('\n');
    assert.match(text, /POST\s*\/api\/v1\/provision/);
    assert.match(text, /GET\s*\/api\/v1\/status\/\{job_id\}/);
    assert.match(text, /DELETE\s*\/api\/v1\/cancel\/\{job_id\}/);
  });
});

describe('DOCS_ENABLED=false', () => {
  const work = makeWorkdir('swagger-off');
  let daemon: Daemon;

  before(async () => {
    daemon = await new Daemon({ dir: work.dir, env: { DOCS_ENABLED: 'false' } }).start();
  });

  after(async () => {
    await daemon?.stop();
    work.cleanup();
  });

  it('serves neither Swagger UI nor the OpenAPI document (404), and the API still answers', async () => {
    for (const path of ['/docs', '/docs/', '/docs/json', '/docs/swagger-ui-init.js', '/docs-yaml']) {
      assert.equal((await daemon.request('GET', path)).status, 404, path);
    }
    assert.equal((await daemon.request('GET', '/health')).status, 200);
  });
});
