import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SourceError } from '../common/errors';
import type { ImageRef, ImageSource, ReadRequest } from '../storage/image-source';
import { download, type DownloadOptions } from './downloader';

const MIB = 1024 * 1024;
const SIZE = 256 * MIB;

/** Byte i of the served object: the same pattern in this process and in the server's. */
const PATTERN =
  'const block = Buffer.alloc(1048576); for (let i = 0; i < block.length; i++) block[i] = (i * 7 + (i >> 9)) & 255;';

/**
 * An HTTP server in a process of its own (a server in this process would stop with the blocked
 * loop the first spec makes): GET /object answers the 256 MiB object, honouring `Range: bytes=N-`;
 * other paths answer 404.
 */
const SERVER = `
const http = require('node:http');
${PATTERN}
const size = ${SIZE};
const server = http.createServer((req, res) => {
  if (req.url !== '/object') { res.writeHead(404); return res.end(); }
  const range = /^bytes=(\\d+)-$/.exec(req.headers.range || '');
  let at = range ? Number(range[1]) : 0;
  res.writeHead(range ? 206 : 200, { 'content-length': size - at, etag: '"v1"' });
  const more = () => {
    while (at < size) {
      const piece = block.subarray(at % block.length);
      at += piece.length;
      if (!res.write(piece)) return res.once('drain', more);
    }
    res.end();
  };
  more();
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

function expectedSha256(): string {
  const block = Buffer.alloc(MIB);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7 + (i >> 9)) & 255;
  const hash = createHash('sha256');
  for (let at = 0; at < SIZE; at += MIB) hash.update(block);
  return hash.digest('hex');
}

/** A source that reads the server above as plain HTTP. */
const source: ImageSource = {
  handles: () => true,
  resolve: () => Promise.reject(new Error('not used')),
  sidecar: () => Promise.resolve(undefined),
  readRequest: (ref: ImageRef, offset: number): Promise<ReadRequest> =>
    Promise.resolve({ kind: 'http', url: ref.url, label: ref.url, offset, etag: ref.etag, stallSeconds: 30 }),
};

describe('download(): the transfer runs in a thread of its own', () => {
  let server: ChildProcess;
  let base: string;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lvp-downloader-'));
    server = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<string>((resolve) =>
      server.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())),
    );
    base = `http://127.0.0.1:${port}`;
  });
  after(() => {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  const options = (path: string, over: Partial<DownloadOptions> = {}): DownloadOptions => ({
    source,
    ref: { url: `${base}/object`, size: SIZE, etag: '"v1"' },
    path,
    attempts: 1,
    delayBeforeRetry: () => 0,
    signal: new AbortController().signal,
    onBytes: () => undefined,
    ...over,
  });

  it('goes on while the main thread is blocked, and the bytes hash to the object', async () => {
    const path = join(dir, 'blocked');
    let firstProgress!: () => void;
    const started = new Promise<void>((resolve) => (firstProgress = resolve));
    const reported: number[] = [];
    const done = download(
      options(path, {
        onBytes: (bytes) => {
          reported.push(bytes);
          if (bytes > 0) firstProgress();
        },
      }),
    );
    await started;
    // Nothing on this thread runs until the file has grown by 16 MiB (5 s at most): no socket is
    // read, no write is started or finished here. A transfer on this thread would add at most the
    // one 4 MiB batch already in the thread pool. (A wait, not a timing: the machine may be slow.)
    const before = statSync(path).size;
    const until = Date.now() + 5000;
    while (Date.now() < until && statSync(path).size - before <= 16 * MIB);
    const grown = statSync(path).size - before;
    const result = await done;
    assert.ok(grown > 16 * MIB, `the file grew by ${grown} bytes while the main thread was blocked`);
    assert.equal(result.bytes, SIZE);
    assert.equal(result.sha256, expectedSha256());
    assert.equal(statSync(path).size, SIZE);
    // Progress counts bytes in the file, in order; the last report is the whole object.
    assert.deepEqual(
      reported,
      [...reported].sort((a, b) => a - b),
    );
    assert.equal(reported.at(-1), SIZE);
  });

  it('stops when its signal is cancelled: the promise rejects and no progress comes after', async () => {
    const path = join(dir, 'cancelled');
    const abort = new AbortController();
    let after = 0;
    let settled = false;
    const done = download(
      options(path, {
        signal: abort.signal,
        onBytes: (bytes) => {
          if (settled) after++;
          if (bytes > 0) abort.abort();
        },
      }),
    );
    await assert.rejects(done, (error: Error) => error.name === 'AbortError');
    settled = true;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(after, 0);
    assert.ok(statSync(path).size < SIZE, 'the transfer went on to the end');
  });

  it('resumes after the bytes on disk: the thread re-hashes them and fetches the rest with a range', async () => {
    const path = join(dir, 'resumed');
    // A first transfer cancelled part-way leaves a partial file, as a crash does.
    const abort = new AbortController();
    await assert.rejects(
      download(
        options(path, { signal: abort.signal, onBytes: (bytes) => bytes > 32 * MIB && abort.abort() }),
      ),
    );
    const kept = statSync(path).size;
    assert.ok(kept > 0 && kept < SIZE, `${kept} bytes kept`);
    let received = 0;
    const result = await download(
      options(path, { resumeFromDisk: true, onReceived: (n) => (received += n) }),
    );
    assert.equal(received, SIZE - kept, 'bytes fetched on resume');
    assert.equal(result.bytes, SIZE);
    assert.equal(result.sha256, expectedSha256());
  });

  it('restarts a replaced object in a new file: a reader holding the old one keeps the bytes it read', async () => {
    const path = join(dir, 'replaced');
    // 8 MiB kept from an older version of the object ("v0"; the server now serves "v1").
    const old = Buffer.alloc(8 * MIB, 0xab);
    writeFileSync(path, old);
    // The NBD export of a streaming convert holds the growing file open like this.
    const reader = await open(path, 'r');
    try {
      const reported: number[] = [];
      const result = await download(
        options(path, {
          ref: { url: `${base}/object`, size: SIZE, etag: '"v0"' },
          resumeFromDisk: true,
          onBytes: (bytes) => reported.push(bytes),
        }),
      );
      assert.equal(result.sha256, expectedSha256());
      assert.equal(result.etag, '"v1"');
      assert.ok(reported.includes(0), 'readers are told the file starts over');
      // Truncating and rewriting the file in place would hand this reader short reads, then v1's bytes.
      const seen = Buffer.alloc(old.length);
      const { bytesRead } = await reader.read(seen, 0, seen.length, 0);
      assert.equal(bytesRead, old.length);
      assert.ok(seen.equals(old), "the held file's bytes changed under its reader");
    } finally {
      await reader.close();
    }
  });

  it("tells the source's refusal as the same SourceError: HTTP 404, not retryable", async () => {
    const path = join(dir, 'missing');
    await assert.rejects(
      download(options(path, { ref: { url: `${base}/missing` }, attempts: 3 })),
      (error: Error) =>
        error instanceof SourceError &&
        !error.retryable &&
        error.details?.http_status === 404 &&
        /does not exist at this URL/.test(error.message),
    );
  });
});
