import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import pino from 'pino';
import { logRequests } from './request-log';

interface RequestLine {
  level: number;
  msg: string;
  request_id: string;
  responseTime: number;
  req: { method: string; url: string; remote_address: string };
  res: { status_code: number };
}

/** A real Fastify with the hook, logging through a plain pino root logger as in the daemon. */
async function served(level: string) {
  const lines: RequestLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as RequestLine);
      done();
    },
  });
  const root = pino({ level }, sink);
  const app = Fastify({ genReqId: () => 'req-1' });
  logRequests(app, root);
  app.get('/api/v1/jobs', async () => ({ jobs: [] }));
  app.post('/api/v1/provision', async (_request, reply) => reply.code(202).send({ job_id: 'j' }));
  app.get('/healthz', async () => ({ status: 'ok' }));
  return { app, lines };
}

describe('request lines', () => {
  it('writes one line per request with method, url, status and request id at info', async () => {
    const { app, lines } = await served('info');
    await app.inject({ method: 'POST', url: '/api/v1/provision', payload: {} });
    await app.inject({ method: 'GET', url: '/api/v1/jobs' });
    await app.inject({ method: 'GET', url: '/api/v1/nothing-here' });
    assert.deepEqual(
      lines.map((l) => [l.level, l.req.method, l.req.url, l.res.status_code, l.request_id, l.msg]),
      [
        [30, 'POST', '/api/v1/provision', 202, 'req-1', 'request completed'],
        [40, 'GET', '/api/v1/nothing-here', 404, 'req-1', 'request completed'],
      ],
      'the successful GET is a debug line, not written at info',
    );
    assert.equal(typeof lines[0].responseTime, 'number');
    assert.equal(lines[0].req.remote_address, '127.0.0.1');
  });

  it('writes successful reads at debug, and never a line for a probe', async () => {
    const { app, lines } = await served('debug');
    await app.inject({ method: 'GET', url: '/api/v1/jobs?limit=1' });
    await app.inject({ method: 'GET', url: '/healthz' });
    assert.deepEqual(
      lines.map((l) => [l.level, l.req.url]),
      [[20, '/api/v1/jobs?limit=1']],
    );
  });
});
