import { createReadStream, statSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface ServedRequest {
  method: string;
  path: string;
  range?: string;
  ifRange?: string;
  /** Status answered, and bytes of body sent so far (counted as they leave). */
  status?: number;
  bytesSent: number;
}

/**
 * How a GET stalls: the connection stays open and nothing more is sent. `afterBytes` undefined:
 * not even the response headers; a number: the headers and that many bytes of body.
 */
export interface Stall {
  afterBytes?: number;
  /** GETs that stall before the path is served normally again (Infinity: every one). */
  times: number;
}

/**
 * A real HTTP server on 127.0.0.1 serving files from a directory, with HEAD, ETag and Range like
 * a web server or object store. `bytesPerSecond` makes it slow, as a far-away server is.
 */
export class ImageServer {
  readonly requests: ServedRequest[] = [];
  bytesPerSecond = 0;
  /**
   * Paths whose body waits for the promise (the headers go out at once): a download that has
   * started and cannot finish until the test lets it, so the test can act while a job waits.
   */
  readonly holds = new Map<string, Promise<void>>();
  /**
   * Paths served without a length, as a generated or proxied download may be: no Content-Length
   * on HEAD or GET (the body is chunked), no ranges.
   */
  readonly unsized = new Set<string>();
  /**
   * Paths whose closed range requests (`bytes=a-b`) are answered from another file under the
   * path's own ETag: a cache in front of the server that still holds an older version.
   */
  readonly staleRanges = new Map<string, string>();
  /** Paths answered with a 302 to another URL. */
  readonly redirects = new Map<string, string>();
  /** Paths whose GETs stall (see stall()). */
  private readonly stalls = new Map<string, Stall>();
  private server?: Server;

  constructor(
    private readonly root: string,
    private readonly address = '127.0.0.1',
  ) {}

  get url(): string {
    return `http://${this.address}:${(this.server!.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, this.address, resolve));
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** The next `times` GETs of `path` go silent (after `afterBytes` bytes of body, or before the headers). */
  stall(path: string, stall: Stall): void {
    this.stalls.set(path, { ...stall });
  }

  /** GETs of `path` that reached the server, in order. */
  getsOf(path: string): ServedRequest[] {
    return this.requests.filter((r) => r.method === 'GET' && r.path === path);
  }

  countOf(method: string, path: string): number {
    return this.requests.filter((r) => r.method === method && r.path === path).length;
  }

  private takeStall(path: string): Stall | undefined {
    const stall = this.stalls.get(path);
    if (!stall) return undefined;
    if (--stall.times <= 0) this.stalls.delete(path);
    return stall;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    const served: ServedRequest = {
      method: req.method!,
      path,
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
      bytesSent: 0,
    };
    this.requests.push(served);
    const stall = req.method === 'GET' ? this.takeStall(path) : undefined;
    if (stall && stall.afterBytes === undefined) return; // accepted, never answered
    const redirect = this.redirects.get(path);
    if (redirect) {
      res.writeHead(302, { location: redirect }).end();
      return;
    }
    const file = join(this.root, normalize(path).replace(/^(\.\.[/\\])+/, ''));
    let size: number;
    let mtime: Date;
    try {
      const info = statSync(file);
      if (!info.isFile()) throw new Error('not a file');
      size = info.size;
      mtime = info.mtime;
    } catch {
      res.writeHead(404).end('not found');
      return;
    }
    const etag = `"${size.toString(16)}-${mtime.getTime().toString(16)}"`;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && (!req.headers['if-range'] || req.headers['if-range'] === etag)) {
      start = Number(range[1]);
      end = range[2] ? Number(range[2]) : size - 1;
      status = 206;
    }
    if (this.unsized.has(path)) {
      served.status = 200;
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        etag,
        'last-modified': mtime.toUTCString(),
      });
      if (req.method === 'HEAD') return void res.end();
      const count = counting((n) => (served.bytesSent += n));
      await pipeline(createReadStream(file, { highWaterMark: 64 * 1024 }), count, res).catch(() => undefined);
      return;
    }
    served.status = status;
    res.writeHead(status, {
      'content-length': String(end - start + 1),
      'content-type': 'application/octet-stream',
      etag,
      'last-modified': mtime.toUTCString(),
      'accept-ranges': 'bytes',
      ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const hold = this.holds.get(path);
    if (hold) {
      res.flushHeaders();
      await hold;
    }
    const stale = status === 206 && range?.[2] ? this.staleRanges.get(path) : undefined;
    const body = createReadStream(stale ?? file, { start, end, highWaterMark: 64 * 1024 });
    const count = counting((n) => (served.bytesSent += n));
    try {
      if (stall) await pipeline(body, silenceAfter(stall.afterBytes!), count, res);
      else if (this.bytesPerSecond > 0) await pipeline(body, throttle(this.bytesPerSecond), count, res);
      else await pipeline(body, count, res);
    } catch {
      // client went away
    }
  }
}

function counting(onBytes: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
}

function silenceAfter(bytes: number): Transform {
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (sent + chunk.length < bytes) {
        sent += chunk.length;
        return done(null, chunk);
      }
      // The rest never leaves, and `done` is never called: the stream (and the connection) hang
      // until the client gives up or stop() drops the connection.
      this.push(chunk.subarray(0, bytes - sent));
      sent = bytes;
    },
  });
}

function throttle(bytesPerSecond: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      setTimeout(() => done(null, chunk), (chunk.length / bytesPerSecond) * 1000);
    },
  });
}
