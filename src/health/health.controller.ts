import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { JobRunner } from '../jobs/job-runner';

const startedAt = new Date().toISOString();

/** Liveness: the process and its event loop answer. No dependency is called. */
@ApiTags('health')
@Controller()
export class HealthController {
  constructor(private readonly runner: JobRunner) {}

  @Get(['health', 'healthz', 'livez'])
  @ApiOperation({ summary: 'Liveness (no dependency checks)', operationId: 'health' })
  health() {
    return {
      status: 'healthy',
      started_at: startedAt,
      uptime_seconds: Math.round(process.uptime()),
      active_jobs: this.runner.runningCount,
      queued_jobs: this.runner.queuedCount,
    };
  }
}
