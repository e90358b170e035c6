import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { JOB, Prometheus, type Series } from '../harness/prometheus';
import { readSse } from '../harness/sse';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { smallQcow2, uniqueQcow2 } from '../fixtures/images';

/**
 * The original Go service's documented alerts (its docs/monitoring.md, "Prometheus Alert Rules"),
 * verbatim: each expression is `selector threshold`. The thresholds (5 failures in 10 minutes, ...)
 * are fleet-sized; what must hold here is that each selector picks the series it picked for the
 * original, so the test queries the selector and loads the whole rule.
 */
const ORIGINAL_ALERTS = [
  {
    alert: 'VolumeProvisionerHighErrorRate',
    selector: 'rate(libvirt_volume_provisioner_requests_total{status=~"5.."}[5m])',
    threshold: '> 0.1',
  },
  {
    alert: 'VolumeProvisionerJobFailures',
    selector: 'increase(libvirt_volume_provisioner_jobs_total{status="failed"}[10m])',
    threshold: '> 5',
  },
  {
    alert: 'VolumeProvisionerHighLatency',
    selector:
      'histogram_quantile(0.95, rate(libvirt_volume_provisioner_requests_duration_seconds_bucket[5m]))',
    threshold: '> 30',
  },
  {
    alert: 'VolumeProvisionerHighActiveJobs',
    selector: 'libvirt_volume_provisioner_active_jobs',
    threshold: '> 10',
  },
];

/** The labels of a series besides the ones Prometheus adds for the target. */
function own(series: Series): Record<string, string> {
  const { job, instance, ...rest } = series.metric;
  assert.equal(job, JOB);
  assert.ok(instance);
  return rest;
}

const isRoot = process.getuid?.() === 0;

describe(
  "the original service's alert expressions over a live scrape",
  {
    skip: isRoot ? false : 'needs root: chattr +i makes the database read-only for a real 503',
  },
  () => {
    const work = makeWorkdir('original-alerts');
    const www = join(work.dir, 'www');
    const db = join(work.dir, 'var/provisioner.db');
    let server: ImageServer;
    let daemon: Daemon;
    let prometheus: Prometheus;
    let slowJob = '';
    const request = (volume: string, more: Record<string, unknown> = {}) => ({
      image_url: `${server.url}/small.qcow2`,
      volume_name: volume,
      volume_size_gb: 1,
      image_type: 'qcow2',
      ...more,
    });

    before(async () => {
      mkdirSync(www);
      mkdirSync(join(work.dir, 'prometheus'));
      copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
      copyFileSync(uniqueQcow2(work.dir, 'slow', 16), join(www, 'slow.qcow2'));
      server = await new ImageServer(www).start();
      daemon = await new Daemon({ dir: work.dir }).start();
      const rules = {
        groups: [
          {
            name: 'original',
            rules: ORIGINAL_ALERTS.map(({ alert, selector, threshold }) => ({
              alert,
              expr: `${selector} ${threshold}`,
              for: '5m',
            })),
          },
        ],
      };
      // YAML is a superset of JSON: no YAML writer needed.
      writeFileSync(join(work.dir, 'prometheus', 'rules.yml'), JSON.stringify(rules));
      prometheus = await new Prometheus(join(work.dir, 'prometheus')).start(`127.0.0.1:${daemon.port}`, [
        join(work.dir, 'prometheus', 'rules.yml'),
      ]);
    });

    after(async () => {
      for (const f of [db, `${db}-wal`]) execFileSync('chattr', ['-i', f], { stdio: 'ignore' });
      if (slowJob) await daemon?.request('DELETE', `/api/v1/cancel/${slowJob}`);
      await prometheus?.stop();
      await daemon?.stop();
      await server?.stop();
      work.cleanup();
    });

    it('loads the four rules, which evaluate without error, and has scraped the idle daemon', async () => {
      // Every jobs_total series exists from the start: the failure below is an increase, not a new series.
      await prometheus.until(
        'a scrape with jobs_total{status="failed"} at 0',
        'libvirt_volume_provisioner_jobs_total{status="failed"}',
        (r) => r.length === 1 && r[0].value[1] === '0',
      );
      const rules = await waitFor('every rule evaluated once', async () => {
        const all = await prometheus.rules();
        return all.length === 4 && all.every((rule) => !rule.lastEvaluation.startsWith('0001'))
          ? all
          : undefined;
      });
      for (const rule of rules) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
    });

    it('after a completed job, a failed job, two 503s and a running job, each selects its series', async () => {
      const completed = await daemon.provision(request('vm-alert-done'));
      assert.equal((await daemon.waitFinal(completed.body.job_id)).status, 'completed');
      // An event stream that runs to its end: counted, but kept out of the latency histogram.
      await readSse(`${daemon.url}/api/v1/jobs/${completed.body.job_id}/events`).done;
      const failed = await daemon.provision(request('vm-alert-failed', { image_type: 'raw' }));
      assert.equal((await daemon.waitFinal(failed.body.job_id)).status, 'failed');

      // A real 5xx: the job database made immutable (root ignores file modes, not chattr +i).
      for (const f of [db, `${db}-wal`]) execFileSync('chattr', ['+i', f]);
      try {
        const first = await daemon.provision(request('vm-alert-503'));
        assert.equal(first.status, 503, JSON.stringify(first.body));
        // rate() sees increases of a series, not its appearance: the second 503 after a scrape of the first.
        await prometheus.until(
          'a scrape of the first 503',
          'libvirt_volume_provisioner_requests_total{status="503"}',
          (r) => r.length === 1,
        );
        assert.equal((await daemon.provision(request('vm-alert-503'))).status, 503);
      } finally {
        for (const f of [db, `${db}-wal`]) execFileSync('chattr', ['-i', f]);
      }

      server.bytesPerSecond = 1024 ** 2;
      const slow = await daemon.provision(
        request('vm-alert-slow', { image_url: `${server.url}/slow.qcow2` }),
      );
      assert.equal(slow.status, 202);
      slowJob = slow.body.job_id;
      await waitFor(
        'the slow job to run',
        async () => (await daemon.status(slowJob)).body.status === 'running',
      );

      const [errors, failures, latency, active] = ORIGINAL_ALERTS.map(({ selector }) => selector);

      const errorRate = await prometheus.until('a 5xx rate', errors, (r) =>
        r.some((s) => Number(s.value[1]) > 0),
      );
      assert.deepEqual(errorRate.map(own), [
        { method: 'POST', endpoint: '/api/v1/provision', status: '503' },
      ]);

      const failedJobs = await prometheus.until('a failed-jobs increase', failures, (r) =>
        r.some((s) => Number(s.value[1]) > 0),
      );
      assert.deepEqual(failedJobs.map(own), [{ status: 'failed' }]);
      assert.ok(Number(failedJobs[0].value[1]) >= 1, failedJobs[0].value[1]);

      const quantiles = await prometheus.until('a p95 for the 503s', latency, (r) =>
        r.some((s) => own(s).status === '503' && Number.isFinite(Number(s.value[1]))),
      );
      const p95 = quantiles.find((s) => own(s).status === '503')!;
      assert.deepEqual(own(p95), { method: 'POST', endpoint: '/api/v1/provision', status: '503' });
      assert.ok(Number(p95.value[1]) > 0 && Number(p95.value[1]) < 30, p95.value[1]);
      assert.ok(
        quantiles.some((s) => own(s).endpoint === '/api/v1/status/:job_id'),
        'status polls have a p95',
      );
      assert.ok(
        !quantiles.some((s) => own(s).endpoint.endsWith('/events')),
        'an event stream is not a latency',
      );
      const streams = await prometheus.query(
        'libvirt_volume_provisioner_requests_total{endpoint="/api/v1/jobs/:job_id/events"}',
      );
      assert.equal(streams.length, 1, 'the event stream is still counted');

      const activeJobs = await prometheus.until(
        'one active job',
        active,
        (r) => r.length === 1 && r[0].value[1] === '1',
      );
      assert.deepEqual(own(activeJobs[0]), { __name__: 'libvirt_volume_provisioner_active_jobs' });

      for (const rule of await prometheus.rules())
        assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
    });
  },
);
