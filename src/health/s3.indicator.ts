import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Settings } from '../config/settings';
import { S3Source } from '../storage/s3.source';

/** One reachability check may take this long; a slower endpoint counts as unreachable. */
const TIMEOUT_MS = 2000;

interface Reachability {
  reachable: boolean;
  checkedAt: Date;
  latencyMs: number;
  statusCode?: number;
  error?: string;
}

/**
 * Whether MINIO_ENDPOINT answers. Checked in the background every READY_S3_CHECK_SECONDS (2 s
 * timeout) and /readyz reports the latest result, so a slow or dead S3 never stalls a probe.
 * Any HTTP answer counts (S3 says 403 to an anonymous request): this is about the network path
 * and TLS, with the same CA settings the downloads use, not about credentials.
 */
@Injectable()
export class S3Indicator implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Readiness');
  private latest?: Reachability;
  private running?: Promise<Reachability>;
  private timer?: NodeJS.Timeout;
  private readonly ca?: Buffer;

  constructor(
    private readonly settings: Settings,
    private readonly s3: S3Source,
    private readonly indicators: HealthIndicatorService,
  ) {
    if (s3.configured && s3.endpoint?.useSSL && settings.s3.caFile) {
      this.ca = readFileSync(settings.s3.caFile);
    }
  }

  get configured(): boolean {
    return this.s3.configured;
  }

  private get url(): string {
    const { host, port, useSSL } = this.s3.endpoint!;
    const name = host.includes(':') ? `[${host}]` : host;
    return `${useSSL ? 'https' : 'http'}://${name}:${port}/`;
  }

  onApplicationBootstrap(): void {
    if (!this.configured) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.settings.ready.s3CheckSeconds * 1000);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  async check() {
    const session = this.indicators.check('s3');
    // Only the very first probe can wait, and then at most TIMEOUT_MS.
    const result = this.latest ?? (await this.refresh());
    const details = {
      endpoint: this.url,
      checked_at: result.checkedAt.toISOString(),
      latency_ms: result.latencyMs,
    };
    return result.reachable
      ? session.up({ ...details, status_code: result.statusCode })
      : session.down({ ...details, message: `S3 endpoint ${this.url} is unreachable: ${result.error}` });
  }

  private refresh(): Promise<Reachability> {
    this.running ??= this.probe()
      .then((result) => {
        if (this.latest && this.latest.reachable !== result.reachable) {
          const line = { endpoint: this.url, error: result.error };
          if (result.reachable) this.logger.log({ ...line, msg: 'S3 endpoint reachable again' });
          else this.logger.warn({ ...line, msg: 'S3 endpoint unreachable' });
        }
        this.latest = result;
        return result;
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private probe(): Promise<Reachability> {
    const started = performance.now();
    const done = (fields: Omit<Reachability, 'checkedAt' | 'latencyMs'>): Reachability => ({
      ...fields,
      checkedAt: new Date(),
      latencyMs: Math.round(performance.now() - started),
    });
    return new Promise((resolve) => {
      const useSSL = this.s3.endpoint!.useSSL;
      const request = (useSSL ? httpsRequest : httpRequest)(this.url, {
        method: 'HEAD',
        signal: AbortSignal.timeout(TIMEOUT_MS),
        agent: false,
        ...(useSSL ? { ca: this.ca, rejectUnauthorized: !this.settings.s3.insecureSkipVerify } : {}),
      });
      request.on('response', (response) => {
        response.resume();
        resolve(done({ reachable: true, statusCode: response.statusCode }));
      });
      request.on('error', (error: NodeJS.ErrnoException) => {
        const reason =
          error.name === 'AbortError' || error.name === 'TimeoutError'
            ? `no answer within ${TIMEOUT_MS} ms`
            : error.message;
        resolve(done({ reachable: false, error: reason }));
      });
      request.end();
    });
  }
}
