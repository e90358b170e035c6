import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { waitFor } from '../harness/wait';

/*
 * Helpers of the host-guest specs (test/vm/*.hostspec.ts), which run INSIDE the host guest
 * (test/vm/host-suite.mjs → run-in-guest.mjs --guest host): Debian bookworm with systemd as
 * PID 1, udev, lvm2, libvirtd. The spec files run in name order in one boot and build on each
 * other, as an operator's first day does: host (install, socket activation, jobs under systemd),
 * libvirt (pool, domain), remove (apt remove/purge).
 */
export const NAME = 'libvirt-volume-provisioner';
export const SERVICE = `${NAME}.service`;
export const SOCKET = `${NAME}.socket`;
export const API = 'http://127.0.0.1:8080/api/v1';
export const VG = 'vghost';
export const THIN_POOL = 'pool';
export const LIBVIRT_POOL = 'lvp';
export const DEB = process.env.LVP_HOST_DEB ?? '';
/** Skip reason outside the host guest (the specs change the system they run on). */
export const notInHostGuest =
  existsSync('/run/systemd/system') && DEB !== ''
    ? false
    : 'only inside the host guest (npm run test:host-vm)';

export interface Result {
  status: number | null;
  out: string;
}

export function run(...args: string[]): Result {
  return runIn('/', ...args);
}

export function runIn(cwd: string, ...args: string[]): Result {
  const r = spawnSync(args[0], args.slice(1), { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

export function must(...args: string[]): string {
  return mustIn('/', ...args);
}

export function mustIn(cwd: string, ...args: string[]): string {
  const r = runIn(cwd, ...args);
  assert.equal(r.status, 0, `${args.join(' ')} failed:\n${r.out}`);
  return r.out;
}

export const unitState = (unit: string) => run('systemctl', 'is-active', unit).out.trim();
export const mainPid = () => must('systemctl', 'show', '-P', 'MainPID', SERVICE).trim();

/** Whether anything accepts a TCP connection on 127.0.0.1:8080. */
export function listening(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(8080, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface Job {
  job_id: string;
  status: string;
  error: string | null;
  error_code: string | null;
  progress: { stage: string };
}

/** API_TOKENS_FILE of the installed daemon (host.hostspec.ts writes it; its reload case changes it). */
export const TOKENS_FILE = `/etc/${NAME}/tokens`;
export const FIRST_TOKEN = 'first-token-0123456789abcdef';

/**
 * The token the specs present: the one in the tokens file now. Each spec file runs in its own
 * process, so the file (not a variable) carries the token from one file's cases to the next.
 */
export function currentToken(): string {
  const line = existsSync(TOKENS_FILE) ? readFileSync(TOKENS_FILE, 'utf8').trim() : '';
  return line.slice(line.indexOf(':') + 1) || FIRST_TOKEN;
}

/**
 * Sets `key=value` in the daemon's environment file (replacing the line that sets it) and restarts
 * the service; resolves once the new process answers.
 */
export async function restartWith(settings: Record<string, string>): Promise<void> {
  const conf = `/etc/default/${NAME}`;
  let text = readFileSync(conf, 'utf8');
  for (const [key, value] of Object.entries(settings)) {
    // Every line that sets it goes (the packaged file may set it too, and with EnvironmentFile the
    // last one wins); the new one is appended.
    text = text.replace(new RegExp(`^${key}=.*\\n?`, 'gm'), '');
    text = `${text.replace(/\n*$/, '')}\n${key}=${value}\n`;
  }
  writeFileSync(conf, text);
  must('systemctl', 'restart', SERVICE);
  await waitFor(
    'the restarted service to answer',
    async () => (await api('/jobs?limit=1')).status === 200 || undefined,
    300_000,
  );
}

export async function api<T = Job>(
  path: string,
  init?: RequestInit,
  token = currentToken(),
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${API}${path}`, {
    ...init,
    signal: AbortSignal.timeout(300_000),
    // A fresh connection per request: under TCG a kept-alive one is sometimes closed by the server
    // just as the next request goes out ("other side closed").
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, connection: 'close' },
  });
  return { status: res.status, body: (await res.json()) as T };
}

export function provision(body: Record<string, unknown>) {
  return api('/provision', { method: 'POST', body: JSON.stringify(body) });
}

export const job = async (id: string) => (await api(`/jobs/${id}`)).body;

/** Waits until the job is in one of `statuses` (or at one of `stages`), and returns it. */
export function jobReaches(id: string, statuses: string[], timeoutMs = 180_000, stages?: readonly string[]) {
  return waitFor(
    `job ${id}: ${stages?.join('/') ?? statuses.join('/')}`,
    async () => {
      const j = await job(id);
      if (stages ? stages.includes(j.progress?.stage) : statuses.includes(j.status)) return j;
      if (stages && ['completed', 'failed', 'cancelled'].includes(j.status))
        throw new Error(`ended ${j.status} before ${stages.join('/')}`);
      return undefined;
    },
    timeoutMs,
    250,
  );
}

/** Submits a provision, expects 202, waits for its end and expects `completed`; returns the job. */
export async function provisionCompleted(body: Record<string, unknown>): Promise<Job> {
  const created = await provision(body);
  assert.equal(created.status, 202, JSON.stringify(created.body));
  const done = await jobReaches(created.body.job_id, ['completed', 'failed']);
  assert.equal(done.status, 'completed', JSON.stringify(done));
  return done;
}

export function lvNames(): string[] {
  return must('lvs', '--noheadings', '-o', 'lv_name', VG)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

export const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
