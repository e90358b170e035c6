import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { httpBed } from '../harness/http-bed';
import { JOB, Prometheus, type Series } from '../harness/prometheus';
import { repoRoot } from '../harness/repo';
import { waitFor } from '../harness/wait';
import { smallQcow2, uniqueQcow2 } from '../fixtures/images';

interface Target {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
}

const dashboard = JSON.parse(
  readFileSync(join(repoRoot(), 'config/grafana/libvirt-volume-provisioner.json'), 'utf8'),
) as Dashboard;
const queryPanels = dashboard.panels.filter((panel) => panel.type !== 'row');

/**
 * A panel expression as Grafana would send it, with the test's values: Grafana's own interval
 * variables get values a 1 s scrape fills, the dashboard's variables select this one daemon. Any
 * variable left over is a variable the dashboard does not define: a failure, not a guess.
 */
function substitute(expr: string, values: Record<string, string>): string {
  const out = expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => {
    const name = (braced ?? bare)!;
    assert.ok(name in values, `unknown variable ${whole} in ${expr}`);
    return values[name];
  });
  return out;
}

const isFiniteValue = (series: Series) => Number.isFinite(Number(series.value[1]));

describe('the Grafana dashboard JSON', () => {
  it('has a fixed uid, a current schemaVersion and the Prometheus datasource as a variable on every panel', () => {
    assert.equal(dashboard.uid, 'lvp-overview');
    assert.ok(dashboard.schemaVersion >= 39, String(dashboard.schemaVersion));
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    assert.deepEqual(variable && { type: variable.type, query: variable.query }, {
      type: 'datasource',
      query: 'prometheus',
    });
    for (const panel of queryPanels) {
      assert.equal(panel.datasource?.uid, '${datasource}', panel.title);
      assert.ok(panel.targets?.length, `${panel.title} has no query`);
      for (const target of panel.targets) assert.equal(target.datasource?.uid, '${datasource}', panel.title);
    }
  });

  it('lays its panels out on the 24-column grid without overlaps, each id once', () => {
    const ids = new Set(dashboard.panels.map((p) => p.id));
    assert.equal(ids.size, dashboard.panels.length);
    const cells = new Map<string, string>();
    for (const { title, gridPos } of dashboard.panels) {
      assert.ok(gridPos.x >= 0 && gridPos.w > 0 && gridPos.x + gridPos.w <= 24, title);
      for (let x = gridPos.x; x < gridPos.x + gridPos.w; x++) {
        for (let y = gridPos.y; y < gridPos.y + gridPos.h; y++) {
          const cell = `${x},${y}`;
          assert.ok(!cells.has(cell), `${title} overlaps ${cells.get(cell)}`);
          cells.set(cell, title);
        }
      }
    }
  });
  it('docs/grafana-layout.svg is the layout drawn from this JSON (node scripts/gen-grafana-layout.mjs)', () => {
    // Throws, with the script's message, when the picture is out of date.
    execFileSync(process.execPath, [join(repoRoot(), 'scripts/gen-grafana-layout.mjs'), '--check'], {
      stdio: 'pipe',
    });
  });
});

describe('every panel of the Grafana dashboard selects data from a real Prometheus scraping the daemon', () => {
  const bed = httpBed('grafana', {
    'small.qcow2': smallQcow2,
    'slow.qcow2': (dir) => uniqueQcow2(dir, 'slow', 16),
  });
  let prometheus: Prometheus;
  const request = (volume: string, more: Record<string, unknown> = {}) => ({
    image_url: bed.url('small.qcow2'),
    volume_name: volume,
    volume_size_gb: 1,
    image_type: 'qcow2',
    ...more,
  });

  before(async () => {
    const dir = join(bed.work.dir, 'prometheus');
    mkdirSync(dir);
    // A rule that fires at once, so the alert panel is shown selecting real ALERTS series; the
    // shipped rules are loaded too (they fire only on real trouble).
    writeFileSync(
      join(dir, 'probe-rules.yml'),
      JSON.stringify({
        groups: [
          {
            name: 'dashboard-probe',
            rules: [{ alert: 'LvpDashboardProbe', expr: 'libvirt_volume_provisioner_ready == 1', for: '0s' }],
          },
        ],
      }),
    );
    prometheus = await new Prometheus(dir).start(`127.0.0.1:${bed.daemon.port}`, [
      join(repoRoot(), 'config/prometheus-rules.yml'),
      join(dir, 'probe-rules.yml'),
    ]);
  });

  after(async () => {
    await prometheus?.stop();
  });

  it('after a completed, a failed and a cancelled job and two 404s, each panel query returns a value', async () => {
    // Counters must be scraped at 0 first: increase() and rate() see changes, not appearances.
    await prometheus.until(
      'a scrape with jobs_total{status="completed"} at 0',
      'libvirt_volume_provisioner_jobs_total{status="completed"}',
      (r) => r.length === 1 && r[0].value[1] === '0',
    );

    const completed = await bed.daemon.provision(request('vm-grafana-done'));
    assert.equal((await bed.daemon.waitFinal(completed.body.job_id)).status, 'completed');
    // The cached qcow2 declared raw: a cache hit, refused at inspection.
    const failed = await bed.daemon.provision(request('vm-grafana-failed', { image_type: 'raw' }));
    assert.equal((await bed.daemon.waitFinal(failed.body.job_id)).status, 'failed');

    bed.server.bytesPerSecond = 1024 ** 2;
    try {
      const slow = await bed.daemon.provision(
        request('vm-grafana-slow', { image_url: bed.url('slow.qcow2') }),
      );
      assert.equal(slow.status, 202);
      const slowId = slow.body.job_id as string;
      await waitFor('the slow job to download', async () => {
        const { body } = await bed.daemon.status(slowId);
        // Cold, so written while it downloads: the download goes on in stage `streaming`.
        const stage = body.progress.stage;
        return (stage === 'downloading' || stage === 'streaming') && body.progress.bytes_processed > 0;
      });
      // Seen running and downloading by at least one scrape, for the gauges and the byte rate.
      await prometheus.until(
        'a scrape of the running job',
        'libvirt_volume_provisioner_running_jobs == 1',
        (r) => r.length === 1,
      );
      assert.equal((await bed.daemon.request('DELETE', `/api/v1/cancel/${slowId}`)).status, 200);
      assert.equal((await bed.daemon.waitFinal(slowId)).status, 'cancelled');
    } finally {
      bed.server.bytesPerSecond = 0;
    }

    const unknown = '3f1e9a52-0c4b-4d7e-9a51-2b6c8d0e4f17';
    assert.equal((await bed.daemon.status(unknown)).status, 404);
    await prometheus.until(
      'a scrape of the first 404',
      'libvirt_volume_provisioner_requests_total{status="404"}',
      (r) => r.length === 1,
    );
    assert.equal((await bed.daemon.status(unknown)).status, 404);
    await prometheus.until(
      'a scrape of the cancelled job and the second 404',
      'libvirt_volume_provisioner_jobs_total{status="cancelled"} == 1 and on() ' +
        'libvirt_volume_provisioner_requests_total{status="404"} == 2',
      (r) => r.length === 1,
    );

    const values: Record<string, string> = {
      datasource: 'prometheus',
      job: JOB,
      // Grafana sends a multi-value variable as a regex; one daemon is its own regex.
      instance: `127.0.0.1:${bed.daemon.port}`,
      cache_max_bytes: '53687091200',
      __rate_interval: '1m',
      __interval: '15s',
      __range: '5m',
    };
    const empty: string[] = [];
    for (const panel of queryPanels) {
      for (const target of panel.targets ?? []) {
        const expr = substitute(target.expr, values);
        const what = `panel "${panel.title}" query ${target.refId}`;
        // Once at once, so a parse error fails here with Prometheus's message.
        await prometheus.query(expr).catch((error: Error) => assert.fail(`${what}: ${error.message}`));
        // rate() needs two samples after an event: wait a few scrapes for a value, not longer.
        const found = await prometheus
          .until(what, expr, (r) => r.some(isFiniteValue), 15_000)
          .catch(() => undefined);
        if (!found) empty.push(`${what}: no series with a value for ${expr}`);
      }
    }
    assert.deepEqual(empty, []);
  });

  it('the alert panel lists the rules that fire, and a "none" row when none does', async () => {
    const panel = queryPanels.find((p) => p.title.startsWith('Alert rules'))!;
    const expr = substitute(panel.targets![0].expr, {
      instance: '.*',
    });
    const firing = await prometheus.until('the probe alert to fire', expr, (r) =>
      r.some((s) => s.metric.alertname === 'LvpDashboardProbe'),
    );
    assert.deepEqual(
      firing.map((s) => s.metric.alertstate),
      ['firing'],
    );
    const none = await prometheus.query(expr.replace('Lvp.*', 'LvpNoSuchRule'));
    assert.deepEqual(
      none.map((s) => [s.metric, s.value[1]]),
      [[{ alertname: 'none' }, '0']],
    );
    // The shipped rules loaded and evaluate (the panel's Lvp.* names are theirs).
    const rules = await waitFor('every rule evaluated once', async () => {
      const all = await prometheus.rules();
      return all.length > 1 && all.every((rule) => !rule.lastEvaluation.startsWith('0001')) ? all : undefined;
    });
    assert.ok(rules.some((rule) => rule.name === 'LvpDown'));
    for (const rule of rules) {
      assert.ok(rule.name.startsWith('Lvp'), rule.name);
      assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
    }
  });
});
