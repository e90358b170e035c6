import { Controller, Get, Res, ServiceUnavailableException } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import type { HealthCheckResult } from '@nestjs/terminus';
import type { FastifyReply } from 'fastify';
import { packageVersion } from '../common/package-version';
import { JobRunner } from '../jobs/job-runner';
import { goDuration } from './go-duration';
import { ReadinessService } from './readiness.service';

const startedAt = new Date().toISOString();
const version = packageVersion();

/**
 * Liveness (/health, /healthz, /livez): the process and its event loop answer; nothing else is
 * called, so it stays fast however busy the disks or S3 are. Readiness (/readyz): every
 * dependency a job needs, 503 naming the failing ones. Bodies in terminus's shape; /health keeps
 * the original service's `status: "healthy"` and job counts for its clients.
 */
@ApiTags('health')
@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly readiness: ReadinessService,
    private readonly runner: JobRunner,
  ) {}

  @Get('health')
  @HealthCheck()
  @ApiOperation({ summary: 'Liveness, with the original service’s fields', operationId: 'health' })
  async original() {
    const uptimeSeconds = Math.round(process.uptime());
    return {
      ...(await this.liveness()),
      // The original's HealthResponse: status, timestamp, version, uptime (a Go duration string).
      status: 'healthy',
      timestamp: new Date().toISOString(),
      version,
      uptime: goDuration(uptimeSeconds),
      started_at: startedAt,
      uptime_seconds: uptimeSeconds,
      active_jobs: this.runner.runningCount,
      queued_jobs: this.runner.queuedCount,
    };
  }

  @Get(['healthz', 'livez'])
  @HealthCheck()
  @ApiOperation({ summary: 'Liveness (no dependency checks)', operationId: 'liveness' })
  live(): Promise<HealthCheckResult> {
    return this.liveness();
  }

  @Get('readyz')
  @HealthCheck()
  @ApiOperation({
    summary: 'Readiness: database, cache and volume storage, qemu-img, S3 (when configured)',
    operationId: 'readiness',
  })
  async ready(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthCheckResult> {
    const { ready, result } = await this.readiness.evaluate();
    // terminus's own 503 body, not the API's error body: probes and dashboards expect this shape.
    if (!ready) reply.status(503);
    return result;
  }

  /**
   * While the daemon shuts down (jobs get SHUTDOWN_GRACE to finish) liveness still answers 200,
   * saying `shutting_down`: a supervisor must not kill a process that is finishing its work.
   */
  private async liveness(): Promise<HealthCheckResult> {
    try {
      return await this.health.check([
        () =>
          this.indicators.check('process').up({
            pid: process.pid,
            uptime_seconds: Math.round(process.uptime()),
          }),
      ]);
    } catch (error) {
      if (error instanceof ServiceUnavailableException) return error.getResponse() as HealthCheckResult;
      throw error;
    }
  }
}
