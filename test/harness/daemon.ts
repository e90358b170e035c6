import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { daemonNodeFlags } from './node-flags';
import { readSse } from './sse';
import { waitFor } from './wait';

const MAIN = join(__dirname, '..', '..', 'src', 'main.js');
/** Started as production starts it: the packaged launcher's node options, then main.js. */
const NODE_ARGS = [...daemonNodeFlags(), MAIN];

/**
 * Every test daemon: a free port, and image servers on loopback allowed (the tests' servers all
 * run on 127.0.0.1; production refuses loopback image URLs, see the SSRF tests).
 */
const TEST_ENV: Record<string, string | undefined> = {
  PATH: process.env.PATH,
  PORT: '0',
  IMAGE_ALLOW_ADDRESSES: '127.0.0.0/8',
  RATE_LIMIT_PER_MINUTE: '100000',
};

export interface DaemonOptions {
  /** Working directory: the daemon's embedded defaults put var/ here. */
  dir: string;
  env?: Record<string, string>;
  /** How long start-up may take (the LVM guest runs under TCG: ~20 s). */
  startTimeoutMs?: number;
}

export interface JsonResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * The stages in which a job writes into its volume: `streaming` (a cold qcow2/raw job converts
 * while it downloads, STREAM_CONVERT=auto) or `converting` (from the cache, or a fallback).
 */
export const WRITE_STAGES = ['streaming', 'converting'] as const;

/**
 * The real daemon (dist/src/main.js) as a child process on 127.0.0.1 with a free port.
 * Its JSON log lines are kept in `logs` for assertions.
 */
export class Daemon {
  readonly logs: string[] = [];
  private child?: ChildProcess;
  private exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  port = 0;

  constructor(private readonly options: DaemonOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child!.pid!;
  }

  async start(): Promise<this> {
    const child = spawn(process.execPath, NODE_ARGS, {
      cwd: this.options.dir,
      env: { ...TEST_ENV, LOG_LEVEL: 'debug', ...this.options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
    let buffer = '';
    const collect = (chunk: Buffer) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        this.logs.push(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    let gone = false;
    void this.exited.then(() => (gone = true));
    this.port = await waitFor(
      'the daemon to listen',
      () => {
        if (gone) throw new Error(`daemon exited during start:\n${this.logs.join('\n')}`);
        for (const line of this.logs) {
          const match = /listening on https?:\/\/[^:]+:(\d+)/.exec(line);
          if (match) return Number(match[1]);
        }
        return undefined;
      },
      // Generous: a start takes ~1 s, but a CI run on 2 cores under other work's load once took > 30 s.
      this.options.startTimeoutMs ?? 90_000,
    );
    return this;
  }

  /** Runs the daemon until it exits by itself; for configurations it must refuse. */
  static async runToExit(
    options: DaemonOptions,
    timeoutMs = 20_000,
  ): Promise<{ code: number | null; output: string }> {
    const child = spawn(process.execPath, NODE_ARGS, {
      cwd: options.dir,
      env: { ...TEST_ENV, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    return { code, output };
  }

  /** SIGTERM and wait for exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.exited!;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 20_000);
    const result = await this.exited!;
    clearTimeout(timer);
    return result;
  }

  /** kill -9: no shutdown hook runs, as in a crash or power cut. */
  async kill9(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const response = await fetch(this.url + path, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return {
      status: response.status,
      headers: response.headers,
      body: parsed as T,
    } satisfies JsonResponse<T>;
  }

  provision(body: Record<string, unknown>, headers: Record<string, string> = {}) {
    return this.request('POST', '/api/v1/provision', body, headers);
  }

  status(jobId: string) {
    return this.request('GET', `/api/v1/status/${jobId}`);
  }

  /** Waits until the job is completed, failed or cancelled, and returns its status body. */
  async waitFinal(jobId: string, timeoutMs = 60_000): Promise<any> {
    return waitFor(
      `job ${jobId} to finish`,
      async () => {
        const { body } = await this.status(jobId);
        return ['completed', 'failed', 'cancelled'].includes(body.status) ? body : undefined;
      },
      timeoutMs,
      100,
    );
  }

  /**
   * Resolves when the job's event stream (SSE) reports `stage` (or one of them); rejects if the job
   * ends first. WRITE_STAGES: the job writes into its volume, whichever path it took.
   */
  /**
   * Resolves once the job writes into its volume (so the volume exists): stage `converting`, or
   * `streaming` once qemu-img has issued writes (the volume is made inside that stage, after the
   * image's header arrived). Rejects if the job ends first.
   */
  reachWrite(jobId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = readSse(`${this.url}/api/v1/jobs/${jobId}/events`, (event) => {
        const { stage, write_bytes_processed: written } = event.data.progress;
        if (stage === 'converting' || (stage === 'streaming' && written > 0)) {
          stream.close();
          resolve();
        }
      });
      stream.done.then(
        () => reject(new Error(`job ${jobId} ended before it wrote into its volume`)),
        () => undefined,
      );
    });
  }

  reachStage(jobId: string, stage: string | readonly string[]): Promise<void> {
    const stages: readonly string[] = typeof stage === 'string' ? [stage] : stage;
    return new Promise((resolve, reject) => {
      const stream = readSse(`${this.url}/api/v1/jobs/${jobId}/events`, (event) => {
        if (stages.includes(event.data.progress.stage)) {
          stream.close();
          resolve();
        }
      });
      stream.done.then(
        () => reject(new Error(`job ${jobId} ended before reaching ${stages.join(' or ')}`)),
        () => undefined,
      );
    });
  }

  /** Parsed JSON log lines. */
  jsonLogs(): Record<string, unknown>[] {
    return this.logs.flatMap((line) => {
      try {
        return [JSON.parse(line)];
      } catch {
        return [];
      }
    });
  }
}
