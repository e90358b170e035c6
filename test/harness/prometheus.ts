import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './ports';
import { waitFor } from './wait';

/** The scrape job name the daemon gets; config/prometheus-rules.yml's LvpDown assumes it. */
export const JOB = 'libvirt-volume-provisioner';

export interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RuleState {
  name: string;
  health: string;
  lastError?: string;
  lastEvaluation: string;
}

/**
 * A real Prometheus (Debian's prometheus package) on 127.0.0.1, scraping one daemon every second
 * and evaluating the given rule files every second.
 */
export class Prometheus {
  private child?: ChildProcess;
  url = '';

  constructor(private readonly dir: string) {}

  async start(target: string, ruleFiles: string[] = []): Promise<this> {
    // YAML is a superset of JSON: no YAML writer needed.
    writeFileSync(
      join(this.dir, 'prometheus.yml'),
      JSON.stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: ruleFiles,
        scrape_configs: [{ job_name: JOB, static_configs: [{ targets: [target] }] }],
      }),
    );
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}`;
    this.child = spawn(
      'prometheus',
      [
        `--config.file=${join(this.dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(this.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    await waitFor('prometheus to be ready', async () => (await fetch(`${this.url}/-/ready`)).ok, 60_000, 200);
    return this;
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    await once(this.child, 'exit');
  }

  /** Evaluates `expr` now; an expression Prometheus refuses (parse error, ...) fails the assertion. */
  async query(expr: string): Promise<Series[]> {
    const response = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as { status: string; error?: string; data: { result: Series[] } };
    assert.equal(body.status, 'success', `${expr}: ${body.error}`);
    return body.data.result;
  }

  /** Waits until `expr` answers what `accept` approves, and returns that answer. */
  until(
    what: string,
    expr: string,
    accept: (result: Series[]) => boolean,
    timeoutMs = 60_000,
  ): Promise<Series[]> {
    return waitFor(
      what,
      async () => {
        const result = await this.query(expr);
        return accept(result) ? result : undefined;
      },
      timeoutMs,
      250,
    );
  }

  async rules(): Promise<RuleState[]> {
    const response = await fetch(`${this.url}/api/v1/rules`);
    const body = (await response.json()) as { data: { groups: { rules: never[] }[] } };
    return body.data.groups.flatMap((group) => group.rules);
  }
}
