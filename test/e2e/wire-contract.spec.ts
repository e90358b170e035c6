import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { JsonResponse } from '../harness/daemon';
import { httpBed } from '../harness/http-bed';
import { validate, type Schema } from '../harness/json-schema';
import { repoRoot } from '../harness/repo';
import { waitFor } from '../harness/wait';
import { smallQcow2, uniqueQcow2 } from '../fixtures/images';

/*
 * The original Go service's response schemas, from its api.yaml (OpenAPI 3.0.3, github.com/
 * rossigee/libvirt-volume-provisioner, components.schemas and the cancel response), examples left
 * out. api.yaml marks no response field required; `required` here lists the fields its Go types
 * (pkg/types) always sent, without `omitempty`: a client may rely on those.
 */
const ErrorResponse: Schema = {
  type: 'object',
  required: ['error', 'message', 'code'],
  properties: {
    error: { type: 'string' },
    message: { type: 'string' },
    code: { type: 'integer' },
  },
};

const ProvisionResponse: Schema = {
  type: 'object',
  required: ['job_id'],
  properties: {
    job_id: { type: 'string', format: 'uuid' },
    status: { type: 'string' },
  },
};

const ProgressInfo: Schema = {
  type: 'object',
  properties: {
    stage: { type: 'string' },
    percent: { type: 'number', minimum: 0, maximum: 100 },
    bytes_processed: { type: 'integer', format: 'int64' },
    bytes_total: { type: 'integer', format: 'int64' },
  },
};

const StatusResponse: Schema = {
  type: 'object',
  required: ['job_id', 'status', 'created_at', 'updated_at'],
  properties: {
    job_id: { type: 'string', format: 'uuid' },
    status: { type: 'string', enum: ['pending', 'running', 'completed', 'failed'] },
    progress: ProgressInfo,
    error: { type: 'string' },
    correlation_id: { type: 'string' },
    cache_hit: { type: 'boolean' },
    image_path: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
  },
};

const CancelResponse: Schema = {
  type: 'object',
  properties: {
    status: { type: 'string' },
    job_id: { type: 'string', format: 'uuid' },
  },
};

const HealthResponse: Schema = {
  type: 'object',
  required: ['status', 'timestamp', 'version', 'uptime'],
  properties: {
    status: { type: 'string', enum: ['healthy', 'degraded'] },
    timestamp: { type: 'string', format: 'date-time' },
    version: { type: 'string' },
    uptime: { type: 'string' },
  },
};

/**
 * Where we deliberately differ, each listed in README "Differences from the original service":
 * a `cancelled` status, and fields that are null where the original left them out.
 */
const NULLABLE = ['error', 'image_path', 'progress.stage', 'progress.bytes_total'];
const OurStatusResponse: Schema = {
  ...StatusResponse,
  properties: {
    ...StatusResponse.properties,
    status: { type: 'string', enum: ['pending', 'running', 'completed', 'failed', 'cancelled'] },
    error: { type: 'string', nullable: true },
    image_path: { type: 'string', nullable: true },
    progress: {
      ...ProgressInfo,
      properties: {
        ...ProgressInfo.properties,
        stage: { type: 'string', nullable: true },
        bytes_total: { type: 'integer', format: 'int64', nullable: true },
      },
    },
  },
};

function assertValid(schema: Schema, response: JsonResponse, what: string): void {
  assert.deepEqual(validate(schema, response.body), [], `${what}: ${JSON.stringify(response.body)}`);
}

/** An error answer: the original's ErrorResponse with `code` = the HTTP status, plus ours. */
function assertErrorBody(response: JsonResponse, status: number, errorCode: string): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assertValid(ErrorResponse, response, `${status} ${errorCode}`);
  assert.equal(response.body.code, status);
  assert.equal(response.body.error_code, errorCode);
  assert.equal(response.body.error, errorCode.replace(/_/g, ' '));
  assert.equal(response.body.request_id, response.headers.get('x-request-id'));
}

describe("the original service's response schemas (its api.yaml)", () => {
  it('the checker refuses what a Go client could not decode: a string code, a missing field, null', () => {
    const before = { code: 'validation_failed', message: 'x', request_id: 'r' };
    assert.deepEqual(validate(ErrorResponse, before), [
      '$.error: missing',
      '$.code: "validation_failed" is not of type integer',
    ]);
    assert.deepEqual(validate(ProgressInfo, { stage: null }), ['$.stage: null, expected string']);
    assert.deepEqual(validate(StatusResponse, { job_id: 'x', status: 'cancelled' }).length, 4);
  });

  it('README lists each deliberate difference these tests allow', () => {
    const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
    const start = readme.indexOf('## Differences from the original service');
    assert.ok(start >= 0, 'README has no "Differences from the original service" section');
    const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
    for (const mention of ['`cancelled`', '`409`', ...NULLABLE.map((field) => `\`${field}\``)]) {
      assert.ok(section.includes(mention), `the section does not mention ${mention}`);
    }
  });
});

describe('our answers against those schemas', () => {
  const bed = httpBed('wire', {
    'small.qcow2': smallQcow2,
    'slow.qcow2': (dir) => uniqueQcow2(dir, 'slow', 16),
  });
  const jobs: Record<'completed' | 'failed' | 'cancelled', string> = {
    completed: '',
    failed: '',
    cancelled: '',
  };
  const request = (volume: string, more: Record<string, unknown> = {}) => ({
    image_url: `${bed.server.url}/small.qcow2`,
    volume_name: volume,
    volume_size_gb: 1,
    image_type: 'qcow2',
    ...more,
  });

  it('provision answers a ProvisionResponse; status a StatusResponse whose correlation_id is the job id', async () => {
    const accepted = await bed.daemon.provision(request('vm-wire-1'));
    assert.equal(accepted.status, 202);
    assertValid(ProvisionResponse, accepted, 'provision');
    jobs.completed = accepted.body.job_id;
    const early = await bed.daemon.status(jobs.completed);
    assertValid(OurStatusResponse, early, 'status while pending or running');
    assert.equal(
      early.body.correlation_id,
      jobs.completed,
      'no correlation_id given: the job id, as the original',
    );
    const final = await bed.daemon.waitFinal(jobs.completed);
    assert.equal(final.status, 'completed', final.error);
    const done = await bed.daemon.status(jobs.completed);
    assertValid(OurStatusResponse, done, 'completed status');
    assert.equal(done.body.correlation_id, jobs.completed);
    assert.equal(done.body.cache_hit, false);
    assert.equal(typeof done.body.image_path, 'string');
  });

  it("echoes the request's own correlation_id", async () => {
    const accepted = await bed.daemon.provision(request('vm-wire-2', { correlation_id: 'deploy-4711' }));
    assert.equal(accepted.status, 202);
    const final = await bed.daemon.waitFinal(accepted.body.job_id);
    assert.equal(final.correlation_id, 'deploy-4711');
  });

  it('a failed job is a StatusResponse with its error text', async () => {
    // The cached qcow2 declared raw: refused at inspection.
    const accepted = await bed.daemon.provision(request('vm-wire-3', { image_type: 'raw' }));
    jobs.failed = accepted.body.job_id;
    const final = await bed.daemon.waitFinal(jobs.failed);
    assert.equal(final.status, 'failed');
    const status = await bed.daemon.status(jobs.failed);
    assertValid(OurStatusResponse, status, 'failed status');
    assert.equal(typeof status.body.error, 'string');
  });

  it('cancel answers the original cancel body {status: "cancelled", job_id}', async () => {
    bed.server.bytesPerSecond = 1024 ** 2;
    try {
      const accepted = await bed.daemon.provision({
        ...request('vm-wire-4'),
        image_url: `${bed.server.url}/slow.qcow2`,
      });
      jobs.cancelled = accepted.body.job_id;
      await waitFor('the slow job to download', async () => {
        const { body } = await bed.daemon.status(jobs.cancelled);
        return body.progress.stage === 'downloading' && body.progress.bytes_processed > 0;
      });
      const cancelled = await bed.daemon.request('DELETE', `/api/v1/cancel/${jobs.cancelled}`);
      assert.equal(cancelled.status, 200);
      assertValid(CancelResponse, cancelled, 'cancel');
      assert.equal(cancelled.body.status, 'cancelled');
      assert.equal(cancelled.body.job_id, jobs.cancelled);
    } finally {
      bed.server.bytesPerSecond = 0;
    }
    const status = await bed.daemon.status(jobs.cancelled);
    assertValid(OurStatusResponse, status, 'cancelled status');
    // The one status the original never reported (README: Differences).
    assert.deepEqual(validate(StatusResponse.properties!.status, status.body.status), [
      '$: "cancelled" is not one of pending, running, completed, failed',
    ]);
  });

  it('every error is an ErrorResponse: code is the HTTP status, error_code ours', async () => {
    const unknown = '3f1e9a52-0c4b-4d7e-9a51-2b6c8d0e4f17';
    assertErrorBody(await bed.daemon.provision(request('-bad')), 400, 'validation_failed');
    assertErrorBody(
      await bed.daemon.request('POST', '/api/v1/provision', '{"image_url": '),
      400,
      'bad_request',
    );
    assertErrorBody(await bed.daemon.status(unknown), 404, 'job_not_found');
    assertErrorBody(await bed.daemon.request('DELETE', `/api/v1/cancel/${unknown}`), 404, 'job_not_found');
    assertErrorBody(await bed.daemon.status('not-a-uuid'), 404, 'not_found');
    assertErrorBody(
      await bed.daemon.request('DELETE', `/api/v1/cancel/${jobs.completed}`),
      409,
      'job_finished',
    );
    assertErrorBody(
      await bed.daemon.provision(request('vm-big', { correlation_id: 'x'.repeat(20_000) })),
      413,
      'body_too_large',
    );
    const form = await bed.daemon.request('POST', '/api/v1/provision', 'a=b', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    assertErrorBody(form, 415, 'unsupported_media_type');
    const fields = (await bed.daemon.provision(request('-bad'))).body.details.fields;
    assert.equal(fields[0].field, 'volume_name');
  });

  it('/health answers the original HealthResponse', async () => {
    const health = await bed.daemon.request('GET', '/health');
    assert.equal(health.status, 200);
    assertValid(HealthResponse, health, '/health');
    assert.equal(health.body.status, 'healthy');
    assert.match(health.body.uptime, /^(\d+h)?(\d+m)?\d+s$/);
    assert.ok(Math.abs(Date.parse(health.body.timestamp) - Date.now()) < 60_000);
    const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
    assert.equal(health.body.version, pkg.version);
  });
});
