import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { guardStall, limitWaitForHeaders, stallLimitedTransport } from './stall-guard';

const LIMIT = 1000;
const stalled = () => new Error('stalled');
/** Lets queued stream callbacks (nextTick, microtasks) run; setImmediate is not mocked. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('guardStall: a body that stops sending fails instead of hanging', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  /** A guarded source whose reader takes every byte as it comes; `error` is set if the guard fails. */
  function flowing(source: Readable) {
    const seen = { bytes: Buffer.alloc(0), error: undefined as Error | undefined, ended: false };
    const guard = guardStall(source, LIMIT, stalled);
    guard.on('data', (chunk: Buffer) => (seen.bytes = Buffer.concat([seen.bytes, chunk])));
    guard.on('error', (error) => (seen.error = error));
    guard.on('end', () => (seen.ended = true));
    return seen;
  }

  it('passes every byte through unchanged and ends with the source', async () => {
    const seen = flowing(Readable.from([Buffer.from('abc'), Buffer.from('def')]));
    await settle();
    mock.timers.tick(LIMIT * 3);
    await settle();
    assert.equal(seen.bytes.toString(), 'abcdef');
    assert.equal(seen.ended, true);
    assert.equal(seen.error, undefined);
  });

  it('fails with the stall error, and destroys the source, once nothing arrived for the limit', async () => {
    const source = new PassThrough();
    const seen = flowing(source);
    source.write('a few bytes');
    await settle();
    mock.timers.tick(LIMIT - 1);
    await settle();
    assert.equal(seen.error, undefined, 'failed before the limit');
    mock.timers.tick(1);
    await settle();
    assert.equal((seen.error as Error | undefined)?.message, 'stalled');
    assert.equal(source.destroyed, true, 'the source (its socket) is left open');
  });

  it('fails a source that sends nothing at all', async () => {
    const seen = flowing(new PassThrough());
    mock.timers.tick(LIMIT);
    await settle();
    assert.equal(seen.error?.message, 'stalled');
  });

  it('starts the limit again with every chunk: a slow source is not a stalled one', async () => {
    const source = new PassThrough();
    const seen = flowing(source);
    for (let i = 0; i < 5; i++) {
      mock.timers.tick(LIMIT - 1);
      source.write('x');
      await settle();
    }
    assert.equal(seen.error, undefined);
    source.end();
    await settle();
    assert.equal(seen.bytes.toString(), 'xxxxx');
    assert.equal(seen.ended, true);
  });

  it('does not count time the reader spends not reading (bytes waiting in the guard)', async () => {
    const source = new PassThrough();
    const guard = guardStall(source, LIMIT, stalled);
    let error: Error | undefined;
    guard.on('error', (e) => (error = e));
    source.write(Buffer.alloc(256 * 1024, 1));
    await settle();
    mock.timers.tick(LIMIT * 10);
    await settle();
    assert.equal(error, undefined, 'a slow reader was taken for a stalled source');
    source.end();
    let bytes = 0;
    for await (const chunk of guard) bytes += (chunk as Buffer).length;
    assert.equal(bytes, 256 * 1024);
  });

  it("passes the source's own error on (a reset stays a reset, retried as a break)", async () => {
    const source = new PassThrough();
    const seen = flowing(source);
    source.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    await settle();
    assert.equal((seen.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET');
  });

  it('stops the clock once the source has ended', async () => {
    const source = new PassThrough();
    const seen = flowing(source);
    source.end('all');
    await settle();
    mock.timers.tick(LIMIT * 10);
    await settle();
    assert.equal(seen.error, undefined);
    assert.equal(seen.ended, true);
  });
});

/**
 * A real server on 127.0.0.1: `headers` false = it accepts and never answers; true = it sends
 * the headers and a few bytes, then nothing.
 */
async function silentServer(headers: boolean) {
  const server = http.createServer((_req, res) => {
    if (!headers) return;
    res.writeHead(200, { 'content-length': '1000' });
    res.write('a few bytes');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    options: { host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/image' },
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe('limitWaitForHeaders and stallLimitedTransport on a real socket', () => {
  it('fails a request whose server accepts the connection and never answers', async () => {
    const server = await silentServer(false);
    try {
      const request = http.request(server.options);
      limitWaitForHeaders(request, 100, () => new Error('no headers'));
      request.end();
      const [error] = (await once(request, 'error')) as Error[];
      assert.equal(error.message, 'no headers');
      assert.equal(request.destroyed, true);
    } finally {
      server.close();
    }
  });

  it('lets a request through whose headers come in time', async () => {
    const server = await silentServer(true);
    try {
      const request = http.request(server.options);
      limitWaitForHeaders(request, 60_000, () => new Error('no headers'));
      request.end();
      const [response] = (await once(request, 'response')) as http.IncomingMessage[];
      assert.equal(response.statusCode, 200);
    } finally {
      server.close();
    }
  });

  it('gives a client library (minio) a request that fails on silence before the headers', async () => {
    const server = await silentServer(false);
    try {
      const transport = stallLimitedTransport(
        http,
        100,
        (options, phase) => new Error(`${phase} ${options.path}`),
      );
      const request = transport.request(server.options, () => assert.fail('no response was sent'));
      request.end();
      const [error] = (await once(request, 'error')) as Error[];
      assert.equal(error.message, 'headers /image');
    } finally {
      server.close();
    }
  });

  it('and a response body that fails on silence after a few bytes, keeping status and headers', async () => {
    const server = await silentServer(true);
    try {
      const transport = stallLimitedTransport(
        http,
        100,
        (options, phase) => new Error(`${phase} ${options.path}`),
      );
      const response = await new Promise<http.IncomingMessage>((resolve) =>
        transport.request(server.options, resolve).end(),
      );
      assert.equal(response.statusCode, 200);
      assert.equal(response.headers['content-length'], '1000');
      let received = '';
      const error = await (async () => {
        for await (const chunk of response) received += String(chunk);
      })().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      assert.equal(received, 'a few bytes');
      assert.equal(error?.message, 'body /image');
    } finally {
      server.close();
    }
  });
});
