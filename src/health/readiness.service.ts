import { Injectable, Logger, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, type HealthCheckResult, type HealthIndicatorFunction } from '@nestjs/terminus';
import { DatabaseIndicator } from './database.indicator';
import { QemuImgIndicator } from './qemu-img.indicator';
import { S3Indicator } from './s3.indicator';
import { StorageIndicators } from './storage.indicators';

export interface Readiness {
  ready: boolean;
  /** terminus's body: {status, info, error, details}. */
  result: HealthCheckResult;
  /** Free bytes of the watched directories ("cache", "volumes"), when they could be read. */
  freeBytes: Record<string, number>;
}

/**
 * Readiness: every dependency a job needs. Used by /readyz and by the metrics scrape; calls at
 * the same time share one evaluation. Changes between ready and not ready are logged once each,
 * not on every probe.
 */
@Injectable()
export class ReadinessService {
  private readonly logger = new Logger('Readiness');
  private running?: Promise<Readiness>;
  private lastReady?: boolean;

  constructor(
    private readonly health: HealthCheckService,
    private readonly database: DatabaseIndicator,
    private readonly storage: StorageIndicators,
    private readonly qemuImg: QemuImgIndicator,
    private readonly s3: S3Indicator,
  ) {}

  evaluate(): Promise<Readiness> {
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private checks(): HealthIndicatorFunction[] {
    const checks: HealthIndicatorFunction[] = [
      () => this.database.check(),
      () => this.storage.cacheDir(),
      () => this.storage.volumes(),
      () => this.qemuImg.check(),
    ];
    if (this.s3.configured) checks.push(() => this.s3.check());
    return checks;
  }

  private async run(): Promise<Readiness> {
    let result: HealthCheckResult;
    try {
      result = await this.health.check(this.checks());
    } catch (error) {
      // terminus answers "not ready" by throwing its 503 with the full result as the body.
      if (!(error instanceof ServiceUnavailableException)) throw error;
      result = error.getResponse() as HealthCheckResult;
    }
    const ready = result.status === 'ok' || result.status === 'degraded';
    this.noteChange(ready, result);
    return { ready, result, freeBytes: freeBytesOf(result) };
  }

  private noteChange(ready: boolean, result: HealthCheckResult): void {
    if (ready === this.lastReady) return;
    const first = this.lastReady === undefined;
    this.lastReady = ready;
    if (ready) {
      if (!first) this.logger.log({ msg: 'ready again' });
      return;
    }
    this.logger.warn({
      status: result.status,
      failing: Object.keys(result.error ?? {}),
      error: result.error,
      msg: `not ready: ${Object.keys(result.error ?? {}).join(', ') || result.status}`,
    });
  }
}

function freeBytesOf(result: HealthCheckResult): Record<string, number> {
  const free: Record<string, number> = {};
  const from = (key: string, as: string) => {
    const bytes = (result.details[key] as { free_bytes?: unknown } | undefined)?.free_bytes;
    if (typeof bytes === 'number') free[as] = bytes;
  };
  from('cache_dir', 'cache');
  from('volume_dir', 'volumes');
  return free;
}
