import { linkSync, mkdirSync, readFileSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { Client } from 'minio';
import type { KeyPair } from './pki';

// s3rver ships no types; this is the part of its (Koa) API the harness uses.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as new (options: Record<string, unknown>) => {
  middleware: ((ctx: KoaContext, next: () => Promise<void>) => Promise<void>)[];
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: import('node:http').Server;
};

interface KoaContext {
  method: string;
  path: string;
  querystring: string;
  headers: Record<string, string | undefined>;
  body: unknown;
  status: number;
  req: { socket: { destroy(): void } };
}

export interface S3Request {
  method: string;
  path: string;
  query: string;
  range?: string;
  ifMatch?: string;
  /** Bytes of body a GET sent so far (counted as they leave). */
  bytesSent: number;
}

export const BUCKET = 'images';
export const ACCESS_KEY = 'S3RVER';
export const SECRET_KEY = 'S3RVER';

/**
 * A real S3-protocol server (s3rver) on 127.0.0.1, driven through the real minio client. It
 * records every request, and can cut a download's connection after N bytes (as a flaky network
 * does). s3rver does not verify SigV4 signatures: only unknown access keys are refused.
 */
export class S3Server {
  readonly requests: S3Request[] = [];
  private server?: InstanceType<typeof S3rver>;
  private address?: AddressInfo;
  /** Cut the next GET of `key` after this many bytes of body. */
  private cuts = new Map<string, number>();
  /** Requests (`METHOD key`) that go silent: after this many bytes of body, or (undefined) before the headers. */
  private stalls = new Map<string, { afterBytes?: number; times: number }>();
  /** Bodies of GETs leave at this rate (bytes/s), as over a slow link; 0: as fast as they can. */
  bytesPerSecond = 0;

  /** `tls`: serve HTTPS with this certificate (objects are then placed with seed(), not put()). */
  constructor(
    private readonly dir: string,
    private readonly tls?: KeyPair,
  ) {}

  get endpoint(): string {
    return `127.0.0.1:${this.address!.port}`;
  }

  get port(): number {
    return this.address!.port;
  }

  /** Environment for a daemon that talks to this server. */
  daemonEnv(): Record<string, string> {
    return {
      MINIO_ENDPOINT: `${this.tls ? 'https' : 'http'}://${this.endpoint}`,
      MINIO_ACCESS_KEY: ACCESS_KEY,
      MINIO_SECRET_KEY: SECRET_KEY,
      MINIO_RETRY_BACKOFF_MS: '100',
    };
  }

  client(accessKey = ACCESS_KEY): Client {
    return new Client({
      endPoint: '127.0.0.1',
      port: this.address!.port,
      useSSL: false,
      accessKey,
      secretKey: SECRET_KEY,
      region: 'us-east-1',
      pathStyle: true,
      // One PUT per object: s3rver lacks ListMultipartUploads, which multipart uploads call.
      partSize: 5 * 1024 ** 3,
    });
  }

  async start(port = 0): Promise<this> {
    this.server = new S3rver({
      port,
      address: '127.0.0.1',
      silent: true,
      directory: this.dir,
      configureBuckets: [{ name: BUCKET }],
      ...(this.tls ? { key: readFileSync(this.tls.key), cert: readFileSync(this.tls.cert) } : {}),
    });
    this.server.middleware.unshift(async (ctx, next) => {
      const key = decodeURIComponent(ctx.path.replace(`/${BUCKET}/`, ''));
      const request: S3Request = {
        method: ctx.method,
        path: ctx.path,
        query: ctx.querystring,
        range: ctx.headers.range,
        ifMatch: ctx.headers['if-match'],
        bytesSent: 0,
      };
      this.requests.push(request);
      const stall = this.takeStall(`${ctx.method} ${key}`);
      // Accepted and never answered; stop() drops the connection.
      if (stall && stall.afterBytes === undefined) return new Promise<void>(() => undefined);
      await next();
      if (stall && ctx.body && typeof (ctx.body as NodeJS.ReadableStream).pipe === 'function') {
        let sent = 0;
        const afterBytes = stall.afterBytes!;
        ctx.body = (ctx.body as NodeJS.ReadableStream).pipe(
          new Transform({
            transform(chunk: Buffer, _encoding, done) {
              if (sent + chunk.length < afterBytes) {
                sent += chunk.length;
                return done(null, chunk);
              }
              // The rest never leaves and `done` is never called: the connection stays open, silent.
              this.push(chunk.subarray(0, afterBytes - sent));
              sent = afterBytes;
            },
          }),
        );
        return;
      }
      if (
        ctx.method === 'GET' &&
        this.bytesPerSecond > 0 &&
        ctx.body &&
        typeof (ctx.body as NodeJS.ReadableStream).pipe === 'function'
      ) {
        ctx.body = (ctx.body as NodeJS.ReadableStream).pipe(throttle(this.bytesPerSecond));
      }
      const cutAfter = this.cuts.get(key);
      if (
        ctx.method === 'GET' &&
        ctx.body &&
        typeof (ctx.body as NodeJS.ReadableStream).pipe === 'function'
      ) {
        // Counts what leaves (after the throttle above): a resumed download's bytes are counted here.
        ctx.body = (ctx.body as NodeJS.ReadableStream).pipe(
          new Transform({
            transform(chunk: Buffer, _encoding, done) {
              request.bytesSent += chunk.length;
              done(null, chunk);
            },
          }),
        );
      }
      if (
        ctx.method === 'GET' &&
        cutAfter !== undefined &&
        ctx.body &&
        typeof (ctx.body as NodeJS.ReadableStream).pipe === 'function'
      ) {
        this.cuts.delete(key);
        let sent = 0;
        const socket = ctx.req.socket;
        ctx.body = (ctx.body as NodeJS.ReadableStream).pipe(
          new Transform({
            transform(chunk: Buffer, _encoding, done) {
              if (sent + chunk.length >= cutAfter) {
                this.push(chunk.subarray(0, cutAfter - sent));
                sent = cutAfter;
                // Give the partial bytes a moment to leave, then drop the connection.
                setTimeout(() => socket.destroy(), 50);
                return;
              }
              sent += chunk.length;
              done(null, chunk);
            },
          }),
        );
      }
    });
    this.address = await this.server.run();
    return this;
  }

  async stop(): Promise<void> {
    // Drop open connections first, as a crashing server would; close() alone waits for them.
    this.server?.httpServer?.closeAllConnections();
    await this.server?.close();
  }

  /** Stops the server and starts a new one on the same port and data (an object store restart). */
  async restart(): Promise<void> {
    const port = this.port;
    await this.stop();
    await this.start(port);
  }

  async put(key: string, file: string): Promise<void> {
    await this.client().fPutObject(BUCKET, key, file);
  }

  async putText(key: string, text: string): Promise<void> {
    await this.client().putObject(BUCKET, key, Buffer.from(text));
  }

  /**
   * Places a large file as an object without uploading it (s3rver keeps objects as plain files
   * and computes their etag on first access): seconds instead of minutes for gigabytes.
   */
  seed(key: string, file: string): void {
    const target = join(this.dir, BUCKET, `${key}._S3rver_object`);
    mkdirSync(dirname(target), { recursive: true });
    linkSync(file, target);
  }

  /** The next GET of `key` loses its connection after `bytes` bytes of body. */
  cutNextDownload(key: string, bytes: number): void {
    this.cuts.set(key, bytes);
  }

  /**
   * The next `times` requests `method key` go silent with the connection open: after `afterBytes`
   * bytes of body, or, without it, before the response headers (as a hung server does).
   */
  stallNext(method: 'GET' | 'HEAD', key: string, stall: { afterBytes?: number; times: number }): void {
    this.stalls.set(`${method} ${key}`, { ...stall });
  }

  private takeStall(request: string): { afterBytes?: number; times: number } | undefined {
    const stall = this.stalls.get(request);
    if (!stall) return undefined;
    if (--stall.times <= 0) this.stalls.delete(request);
    return stall;
  }

  /** GETs of the object itself (not of its sidecar, not HEADs). */
  downloadsOf(key: string): S3Request[] {
    return this.requests.filter((r) => r.method === 'GET' && r.path === `/${BUCKET}/${key}`);
  }

  requestsFor(key: string): S3Request[] {
    return this.requests.filter((r) => r.path === `/${BUCKET}/${key}`);
  }
}

/** Lets each chunk go after the time it takes at `bytesPerSecond`, in chunks of at most 64 KiB. */
function throttle(bytesPerSecond: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const pieces: Buffer[] = [];
      for (let at = 0; at < chunk.length; at += 64 * 1024) pieces.push(chunk.subarray(at, at + 64 * 1024));
      const next = () => {
        const piece = pieces.shift();
        if (!piece) return done();
        setTimeout(
          () => {
            this.push(piece);
            next();
          },
          (piece.length / bytesPerSecond) * 1000,
        );
      };
      next();
    },
  });
}
