import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { Agent as HttpsAgent } from 'node:https';
import { Injectable, Logger } from '@nestjs/common';
import type { Client } from 'minio';
import { SourceError, SourceStalledError } from '../common/errors';
import { Settings } from '../config/settings';
import { pingEndpoint, type PingTls } from './endpoint-ping';
import { ImageRef, ImageSource, ReadRequest, SIDECAR_MAX_BYTES } from './image-source';
import { readSmallText } from './read-small';
import { stallLimitedTransport } from './stall-guard';
import { isUntrustedCertificate } from './tls-error';
import { normalizeEtag, parseEndpoint, S3Endpoint, s3Location, S3Location } from './s3-location';

/**
 * The minio client and its dependencies (lodash among them) hold ~6 MiB of V8 heap: loaded when an S3
 * endpoint is configured, not by every daemon (docs/performance.md, "Memory (P5), measured").
 */
let minio: typeof import('minio') | undefined;
function loadMinio(): typeof import('minio') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  minio ??= require('minio') as typeof import('minio');
  return minio;
}

/** Lifetime of the signed URLs the downloads use; a transfer that outlives it gets a new one on retry. */
const PRESIGN_SECONDS = 6 * 3600;

/**
 * S3/MinIO through the minio client (SigV4): metadata with statObject, bytes through signed URLs
 * so a download can resume with a Range request guarded by the object's etag. The client's own
 * retries are off: the cache's downloader retries once, for every source alike.
 */
@Injectable()
export class S3Source implements ImageSource {
  private readonly logger = new Logger(S3Source.name);
  readonly endpoint?: S3Endpoint;
  private readonly client?: Client;
  private readonly httpsAgent?: HttpsAgent;
  private readonly tls?: PingTls;
  private readonly stallSeconds: number;

  constructor(settings: Settings) {
    this.stallSeconds = settings.retry.stallSeconds;
    if (!settings.s3.endpoint) return;
    this.endpoint = parseEndpoint(settings.s3.endpoint, settings.s3.useSsl);
    if (this.endpoint.useSSL && (settings.s3.caFile || settings.s3.insecureSkipVerify)) {
      this.tls = {
        ca: settings.s3.caFile ? readFileSync(settings.s3.caFile) : undefined,
        rejectUnauthorized: !settings.s3.insecureSkipVerify,
      };
      this.httpsAgent = new HttpsAgent({ keepAlive: true, ...this.tls });
    }
    if (settings.s3.insecureSkipVerify) {
      this.logger.warn(
        `MINIO_INSECURE_SKIP_VERIFY=true: the certificate of ${settings.s3.endpoint} is NOT verified; ` +
          'anyone on the path can serve images. Use MINIO_CA_FILE instead.',
      );
    }
    this.client = new (loadMinio().Client)({
      endPoint: this.endpoint.host,
      port: this.endpoint.port,
      useSSL: this.endpoint.useSSL,
      accessKey: settings.s3.accessKey ?? '',
      secretKey: settings.s3.secretKey ?? '',
      region: settings.s3.region,
      pathStyle: true,
      transportAgent: this.httpsAgent,
      // statObject and the sidecar's getObject would otherwise wait forever on a silent endpoint.
      transport: stallLimitedTransport(
        this.endpoint.useSSL ? https : http,
        this.stallSeconds * 1000,
        (request, phase) =>
          new SourceStalledError(
            `the S3 endpoint ${this.endpoint!.host}:${this.endpoint!.port} (${request.method} ${request.path?.split('?')[0]})`,
            this.stallSeconds,
            phase,
          ),
      ),
      retryOptions: { disableRetry: true },
    });
  }

  get configured(): boolean {
    return this.client !== undefined;
  }

  /** The endpoint's root URL, as the readiness check names it. */
  get endpointUrl(): string | undefined {
    if (!this.endpoint) return undefined;
    const { host, port, useSSL } = this.endpoint;
    return `${useSSL ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  }

  /** Whether the endpoint answers at all (any HTTP status): resolves with the status, rejects with why not. */
  ping(timeoutMs: number): Promise<number> {
    if (!this.endpointUrl) return Promise.reject(new Error('no S3 endpoint is configured (MINIO_ENDPOINT)'));
    return pingEndpoint(this.endpointUrl, this.tls, timeoutMs);
  }

  handles(url: URL): boolean {
    return this.configured && s3Location(url, this.endpoint) !== undefined;
  }

  async resolve(url: URL, _signal: AbortSignal): Promise<ImageRef> {
    const where = this.locate(url.href);
    const stat = await this.stat(where, url.href);
    return {
      url: url.href,
      size: stat.size,
      etag: normalizeEtag(stat.etag),
      lastModified: stat.lastModified?.toUTCString(),
    };
  }

  async readRequest(ref: ImageRef, offset: number): Promise<ReadRequest> {
    const where = this.locate(ref.url);
    const signed = await this.client!.presignedGetObject(where.bucket, where.key, PRESIGN_SECONDS);
    return {
      kind: 's3',
      url: signed,
      label: ref.url,
      offset,
      etag: ref.etag,
      stallSeconds: this.stallSeconds,
      tls: this.tls && { ca: this.tls.ca?.toString(), rejectUnauthorized: this.tls.rejectUnauthorized },
    };
  }

  async sidecar(ref: ImageRef, _signal: AbortSignal): Promise<string | undefined> {
    const where = this.locate(ref.url);
    const sidecar = { bucket: where.bucket, key: `${where.key}.sha256` };
    try {
      const stat = await this.client!.statObject(sidecar.bucket, sidecar.key);
      if (stat.size > SIDECAR_MAX_BYTES) {
        throw new SourceError(
          `s3://${sidecar.bucket}/${sidecar.key} is ${stat.size} bytes; it is not a checksum file`,
        );
      }
      const body = await this.client!.getObject(sidecar.bucket, sidecar.key);
      return await readSmallText(body, SIDECAR_MAX_BYTES, `s3://${sidecar.bucket}/${sidecar.key}`);
    } catch (error) {
      if (error instanceof loadMinio().S3Error && ['NotFound', 'NoSuchKey'].includes(String(error.code)))
        return undefined;
      throw this.translate(error, `s3://${sidecar.bucket}/${sidecar.key}`);
    }
  }

  private locate(url: string): S3Location {
    const where = s3Location(new URL(url), this.endpoint);
    if (!where) throw new SourceError(`${url} does not name a bucket and key on the S3 endpoint`);
    return where;
  }

  private async stat(where: S3Location, url: string) {
    try {
      return await this.client!.statObject(where.bucket, where.key);
    } catch (error) {
      throw this.translate(error, url);
    }
  }

  /** minio errors → SourceError with what the operator should check. */
  private translate(error: unknown, url: string): Error {
    if (error instanceof SourceError) return error;
    if (error instanceof loadMinio().S3Error) {
      const code = String(error.code ?? '');
      const hints: Record<string, string> = {
        NotFound: 'the object does not exist',
        NoSuchKey: 'the object does not exist',
        NoSuchBucket: 'the bucket does not exist',
        InvalidAccessKeyId: 'the S3 endpoint does not know this access key; check MINIO_ACCESS_KEY',
        SignatureDoesNotMatch: 'the S3 endpoint rejected the signature; check MINIO_SECRET_KEY',
        AccessDenied: 'access denied; check the access key and the bucket policy',
        Forbidden: 'access denied; check MINIO_ACCESS_KEY, MINIO_SECRET_KEY and the bucket policy',
        SlowDown: 'the S3 endpoint is throttling requests',
      };
      const retryable = ['SlowDown', 'InternalError', 'ServiceUnavailable', 'RequestTimeout'].includes(code);
      return new SourceError(
        `S3 refused ${url}: ${hints[code] ?? code} (${error.message})`,
        { url, s3_code: code },
        retryable,
      );
    }
    const errno = (error as NodeJS.ErrnoException).code;
    if (isUntrustedCertificate(errno)) {
      return new SourceError(
        `the S3 endpoint ${this.endpoint!.host}:${this.endpoint!.port} presented a certificate this host does not trust ` +
          `(${errno}) while fetching ${url}; set MINIO_CA_FILE to the CA certificate that signed it`,
        { url, error: errno },
        false,
      );
    }
    if (errno) {
      return new SourceError(
        `cannot reach the S3 endpoint for ${url}: ${errno}`,
        { url, error: errno },
        true,
      );
    }
    return error as Error;
  }
}
