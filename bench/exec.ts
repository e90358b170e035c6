import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** Runs a program (argument array, no shell) and resolves with its output; rejects on failure. */
export function sh(file: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(
          new Error(`${file} ${args.join(' ')} failed (${code ?? signal}): ${stderr.trim().slice(-400)}`),
        );
    });
  });
}

/** Seconds an async step took. */
export async function timed(step: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await step();
  return (performance.now() - start) / 1000;
}
