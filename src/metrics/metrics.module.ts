import { Module, OnModuleInit } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { register } from 'prom-client';
import { CacheModule } from '../cache/cache.module';
import { HealthModule } from '../health/health.module';
import { JobsModule } from '../jobs/jobs.module';
import { HttpMetrics } from './http-metrics';
import { JobMetrics } from './job-metrics';
import { MetricsController } from './metrics.controller';
import { METRIC_PREFIX, METRIC_PROVIDERS } from './metrics';

/**
 * Prometheus metrics at /metrics: the daemon's own (prefix libvirt_volume_provisioner_, see
 * metrics.ts) and prom-client's default process and Node.js metrics (process_*, nodejs_*).
 */
@Module({
  imports: [
    PrometheusModule.register({
      path: '/metrics',
      controller: MetricsController,
      customMetricPrefix: METRIC_PREFIX,
      defaultMetrics: { enabled: true },
    }),
    JobsModule,
    CacheModule,
    HealthModule,
  ],
  providers: [...METRIC_PROVIDERS, HttpMetrics, JobMetrics],
})
export class MetricsModule implements OnModuleInit {
  /**
   * prom-client names three gauges `*_total`, which Prometheus reserves for counters (promtool
   * check metrics refuses them). The same numbers are in nodejs_active_{handles,requests,resources}
   * by type: sum them.
   */
  onModuleInit(): void {
    for (const name of ['handles', 'requests', 'resources']) {
      register.removeSingleMetric(`nodejs_active_${name}_total`);
    }
  }
}
