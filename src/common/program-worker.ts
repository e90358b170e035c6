/**
 * The program thread: starts every program the daemon runs (program-thread.ts sends them here).
 * Starting a program blocks the thread that starts it: libuv forks, then waits until the child
 * has exec'd, and a CPU profile of the daemon under 500 queued jobs found that wait (5 ms on an
 * idle machine, 10-50 ms on a busy one) the most frequent cause of its event loop's stalls
 * (docs/performance.md). Here it blocks this thread only.
 *
 *   in:  { kind: 'run', id, file, args, options, streamStdout, cancelled }, { kind: 'cancel', id },
 *        { kind: 'ack', id } (the chunk of stdout sent last has been consumed)
 *   out: { kind: 'stdout', id, chunk }, { kind: 'done', id, result }, { kind: 'failed', id, failure }
 */
import { parentPort } from 'node:worker_threads';
import {
  failureOf,
  launch,
  type ProgramFailure,
  type ProgramResult,
  type RunOptions,
} from './program-launch';

/** The options that cross threads: everything but the signal and the stdout consumer. */
export type PlainRunOptions = Omit<RunOptions, 'signal' | 'onStdout'>;

export type ToProgramThread =
  | {
      kind: 'run';
      id: number;
      file: string;
      args: string[];
      options: PlainRunOptions;
      streamStdout: boolean;
      cancelled: boolean;
    }
  | { kind: 'cancel'; id: number }
  | { kind: 'ack'; id: number };

export type FromProgramThread =
  | { kind: 'stdout'; id: number; chunk: Uint8Array }
  | { kind: 'done'; id: number; result: ProgramResult }
  | { kind: 'failed'; id: number; failure: ProgramFailure };

interface Running {
  abort: AbortController;
  /** Resolves the wait for the main thread to consume the last chunk of stdout. */
  consumed?: () => void;
}

if (parentPort) {
  const port = parentPort;
  const running = new Map<number, Running>();
  const post = (message: FromProgramThread, transfer: ArrayBuffer[] = []) =>
    port.postMessage(message, transfer);

  const start = (request: Extract<ToProgramThread, { kind: 'run' }>) => {
    const entry: Running = { abort: new AbortController() };
    running.set(request.id, entry);
    if (request.cancelled) entry.abort.abort();
    const onStdout = request.streamStdout
      ? (chunk: Uint8Array) =>
          new Promise<void>((resolve) => {
            entry.consumed = resolve;
            const copy = chunk.slice(); // its own buffer, handed over without a copy
            post({ kind: 'stdout', id: request.id, chunk: copy }, [copy.buffer as ArrayBuffer]);
          })
      : undefined;
    launch(request.file, request.args, { ...request.options, signal: entry.abort.signal, onStdout })
      .then(
        (result) => post({ kind: 'done', id: request.id, result }),
        (error) => post({ kind: 'failed', id: request.id, failure: failureOf(error) }),
      )
      .finally(() => running.delete(request.id));
  };

  port.on('message', (message: ToProgramThread) => {
    if (message.kind === 'run') return start(message);
    const entry = running.get(message.id);
    if (!entry) return;
    // A cancel also ends the wait for a chunk's consumer: the program is being stopped.
    if (message.kind === 'cancel') entry.abort.abort();
    const consumed = entry.consumed;
    entry.consumed = undefined;
    consumed?.();
  });
}
