import type { Provider } from '@nestjs/common';
import { makeCounterProvider, makeGaugeProvider, makeHistogramProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge } from 'prom-client';
import { ImageCache } from '../cache/image-cache.service';
import { ReadinessService } from '../health/readiness.service';
import { JobRunner } from '../jobs/job-runner';

/**
 * Every metric of the daemon, in one place. Names are given without the prefix; the Prometheus
 * module adds `libvirt_volume_provisioner_` (see docs/monitoring.md for what each one means).
 * Gauges and the cache counters read their source when scraped (collect), so they are current
 * whatever else has or has not been called.
 */
export const METRIC_PREFIX = 'libvirt_volume_provisioner';

/*
 * Names and label names the original Go service defined (requests_total{method,endpoint,status},
 * requests_duration_seconds, jobs_total{status}, active_jobs, job_duration_seconds) are kept as
 * they were: its documented alerts and dashboards select them (test/e2e/original-alerts.spec.ts).
 */
export const REQUESTS_TOTAL = 'requests_total';
export const REQUEST_DURATION = 'requests_duration_seconds';
export const JOBS_TOTAL = 'jobs_total';
export const JOB_DURATION = 'job_duration_seconds';
export const STAGE_DURATION = 'stage_duration_seconds';
export const BYTES_WRITTEN = 'bytes_written_total';

/** `started` is a job accepted (queued), as the original counted it; the others are how jobs ended. */
export const JOB_OUTCOMES = ['started', 'completed', 'failed', 'cancelled'] as const;
export type JobOutcome = (typeof JOB_OUTCOMES)[number];

/** A job takes seconds (a cached image into a file) to an hour (JOB_TIMEOUT's default). */
const JOB_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200];
/** A stage takes milliseconds (checking_cache) to most of a job (downloading, converting). */
const STAGE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
/**
 * Up to 5 min: the original's alert is `histogram_quantile(0.95, ...) > 30`, which a top bucket of
 * 30 s could never report (the quantile stops at the highest finite bound). A cancel waits for the
 * job's rollback, so a slow one is real latency.
 */
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A counter whose total lives elsewhere (a plain field): brought up to that total on each scrape. */
function mirror(counter: Counter<string>, total: number): void {
  counter.reset();
  counter.inc(total);
}

export const METRIC_PROVIDERS: Provider[] = [
  makeCounterProvider({
    name: REQUESTS_TOTAL,
    help: 'HTTP requests answered, by method, endpoint (route template) and status code.',
    labelNames: ['method', 'endpoint', 'status'],
  }),
  makeHistogramProvider({
    name: REQUEST_DURATION,
    help: 'Time from receiving an HTTP request to the end of its response; event streams are not observed.',
    labelNames: ['method', 'endpoint', 'status'],
    buckets: REQUEST_BUCKETS,
  }),
  makeCounterProvider({
    name: JOBS_TOTAL,
    help: 'Jobs by status: started (accepted and queued), then completed, failed or cancelled.',
    labelNames: ['status'],
  }),
  makeHistogramProvider({
    name: JOB_DURATION,
    help: 'Run time of finished jobs (from start of running to end, rollback included), by final status.',
    labelNames: ['status'],
    buckets: JOB_BUCKETS,
  }),
  makeHistogramProvider({
    name: STAGE_DURATION,
    help: 'Duration of pipeline stages that finished (the next stage began or the job completed).',
    labelNames: ['stage'],
    buckets: STAGE_BUCKETS,
  }),
  makeCounterProvider({
    name: BYTES_WRITTEN,
    help: 'Image bytes (virtual size) converted into volumes by qemu-img.',
  }),
  makeCounterProvider({
    name: 'bytes_downloaded_total',
    help: 'Bytes received from image sources (S3, HTTP), including bytes of downloads later abandoned.',
    inject: [ImageCache],
    collect(this: Counter<string>, cache: ImageCache) {
      mirror(this, cache.counters.bytesDownloaded);
    },
  }),
  makeCounterProvider({
    name: 'cache_hits_total',
    help: 'Jobs whose image was already in the cache.',
    inject: [ImageCache],
    collect(this: Counter<string>, cache: ImageCache) {
      mirror(this, cache.counters.hits);
    },
  }),
  makeCounterProvider({
    name: 'cache_misses_total',
    help: 'Jobs whose image had to be downloaded (jobs sharing one download count once each).',
    inject: [ImageCache],
    collect(this: Counter<string>, cache: ImageCache) {
      mirror(this, cache.counters.misses);
    },
  }),
  makeCounterProvider({
    name: 'cache_evictions_total',
    help: 'Images removed from the cache to stay within CACHE_MAX_BYTES / CACHE_MAX_ENTRIES.',
    inject: [ImageCache],
    collect(this: Counter<string>, cache: ImageCache) {
      mirror(this, cache.counters.evictions);
    },
  }),
  makeGaugeProvider({
    name: 'cache_bytes',
    help: 'Bytes of the images in the cache, as counted against CACHE_MAX_BYTES.',
    inject: [ImageCache],
    collect(this: Gauge<string>, cache: ImageCache) {
      this.set(cache.list().reduce((sum, { entry, expandedBytes }) => sum + entry.size + expandedBytes, 0));
    },
  }),
  makeGaugeProvider({
    name: 'cache_entries',
    help: 'Images in the cache.',
    inject: [ImageCache],
    collect(this: Gauge<string>, cache: ImageCache) {
      this.set(cache.list().length);
    },
  }),
  makeGaugeProvider({
    name: 'active_jobs',
    // The original counted pending and running jobs (it had no queue: every job ran at once), and
    // alerts on `active_jobs > 10`; running alone never exceeds MAX_CONCURRENT_JOBS.
    help: 'Jobs not finished yet: running plus queued (running_jobs + queued_jobs).',
    inject: [JobRunner],
    collect(this: Gauge<string>, runner: JobRunner) {
      this.set(runner.runningCount + runner.queuedCount);
    },
  }),
  makeGaugeProvider({
    name: 'running_jobs',
    help: 'Jobs running now (at most MAX_CONCURRENT_JOBS).',
    inject: [JobRunner],
    collect(this: Gauge<string>, runner: JobRunner) {
      this.set(runner.runningCount);
    },
  }),
  makeGaugeProvider({
    name: 'queued_jobs',
    help: 'Jobs waiting for a free slot (MAX_CONCURRENT_JOBS).',
    inject: [JobRunner],
    collect(this: Gauge<string>, runner: JobRunner) {
      this.set(runner.queuedCount);
    },
  }),
  makeGaugeProvider({
    name: 'ready',
    help: '1 when every readiness check passes (what /readyz answers with 200), else 0.',
    inject: [ReadinessService],
    async collect(this: Gauge<string>, readiness: ReadinessService) {
      this.set((await readiness.evaluate()).ready ? 1 : 0);
    },
  }),
  makeGaugeProvider({
    name: 'readiness_check_up',
    help: 'Each readiness check of /readyz: 1 up, 0 down.',
    labelNames: ['check'],
    inject: [ReadinessService],
    async collect(this: Gauge<string>, readiness: ReadinessService) {
      const { result } = await readiness.evaluate();
      this.reset();
      for (const [check, detail] of Object.entries(result.details)) {
        this.set({ check }, detail.status === 'down' ? 0 : 1);
      }
    },
  }),
  makeGaugeProvider({
    name: 'free_bytes',
    help: 'Free bytes (for this daemon) of the filesystems readiness watches: dir="cache" or "volumes".',
    labelNames: ['dir'],
    inject: [ReadinessService],
    async collect(this: Gauge<string>, readiness: ReadinessService) {
      const { freeBytes } = await readiness.evaluate();
      this.reset();
      for (const [dir, bytes] of Object.entries(freeBytes)) this.set({ dir }, bytes);
    },
  }),
];
