import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

/** The compiled CLI, next to the compiled daemon. */
export const LVP_MAIN = join(__dirname, '..', '..', 'src', 'cli', 'main.js');

export interface LvpResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON lines. */
  lines: any[];
}

/**
 * `lvp` as a child process without a terminal (so it writes JSON lines), with only the
 * environment given: the test's own LVP_* variables must not leak in.
 */
export class Lvp {
  stdout = '';
  stderr = '';
  readonly child: ChildProcess;
  readonly done: Promise<LvpResult>;

  constructor(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000) {
    this.child = spawn(process.execPath, [LVP_MAIN, ...args], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (chunk) => (this.stdout += chunk));
    this.child.stderr!.on('data', (chunk) => (this.stderr += chunk));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    this.done = once(this.child, 'close').then(([code, signal]) => {
      clearTimeout(timer);
      return { code, signal, stdout: this.stdout, stderr: this.stderr, lines: this.lines() };
    });
  }

  /** The complete lines written to stdout so far that are JSON, parsed. */
  lines(): any[] {
    return this.stdout
      .split('\n')
      .slice(0, -1)
      .flatMap((line) => {
        try {
          return [JSON.parse(line)];
        } catch {
          return [];
        }
      });
  }
}

export function runLvp(args: string[], env: Record<string, string> = {}): Promise<LvpResult> {
  return new Lvp(args, env).done;
}

/** A shell word. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * A real terminal: a tmux server of our own (its own socket, so nobody else's sessions are
 * touched) running one command in a window of a fixed size. The pane is read with capture-pane.
 */
export class Tmux {
  constructor(private readonly socket: string) {}

  /** Runs `command` (a shell command line) in a new detached session. */
  start(command: string, width = 120, height = 30): void {
    this.tmux('new-session', '-d', '-s', 'lvp', '-x', String(width), '-y', String(height), command);
  }

  /** The visible pane as text. */
  capture(): string {
    return this.tmux('capture-pane', '-p', '-t', 'lvp');
  }

  sendKeys(...keys: string[]): void {
    this.tmux('send-keys', '-t', 'lvp', ...keys);
  }

  kill(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // already gone
    }
  }

  private tmux(...args: string[]): string {
    return execFileSync('tmux', ['-S', this.socket, ...args], { encoding: 'utf8', stdio: 'pipe' });
  }
}
