import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ProgramFailure, ProgramResult, RunOptions } from './program-launch';
import type { FromProgramThread, ToProgramThread } from './program-worker';

/** A program that did not exit 0 (or could not start, was cancelled, timed out), as execa reported it. */
export class ProgramFailed extends Error implements ProgramFailure {
  readonly shortMessage: string;
  readonly exitCode?: number;
  readonly signal?: string;
  readonly isCanceled: boolean;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;

  constructor(failure: ProgramFailure) {
    super(failure.message);
    this.name = 'ProgramFailed';
    this.shortMessage = failure.shortMessage;
    this.exitCode = failure.exitCode;
    this.signal = failure.signal;
    this.isCanceled = failure.isCanceled;
    this.timedOut = failure.timedOut;
    this.stdout = failure.stdout;
    this.stderr = failure.stderr;
  }
}

interface Pending {
  resolve: (result: ProgramResult) => void;
  reject: (error: Error) => void;
  onStdout?: (chunk: Uint8Array) => Promise<void>;
  /** What the stdout consumer threw: the program was stopped, and this is the run's error. */
  consumerError?: Error;
  done: () => void;
}

/**
 * Starts programs from a thread of its own (program-worker.ts), so that the fork and the wait for
 * the child's exec never hold the event loop. One thread for the daemon, started at the first
 * program; it keeps the process alive only while programs run. The programs' parent thread is
 * that thread: setpriv's die-with-parent signal fires if it ends, so it is never stopped while a
 * program runs (a dying thread fails its programs, and the next run starts a new one).
 */
export class ProgramThread {
  private worker?: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  run(file: string, args: readonly string[], options: RunOptions): Promise<ProgramResult> {
    const worker = (this.worker ??= this.startWorker());
    const id = this.nextId++;
    const { signal, onStdout, ...plain } = options;
    return new Promise<ProgramResult>((resolve, reject) => {
      const cancel = () => worker.postMessage({ kind: 'cancel', id } satisfies ToProgramThread);
      const done = () => {
        signal?.removeEventListener('abort', cancel);
        this.pending.delete(id);
        if (this.pending.size === 0) worker.unref();
      };
      this.pending.set(id, { resolve, reject, onStdout, done });
      worker.ref();
      worker.postMessage({
        kind: 'run',
        id,
        file,
        args: [...args],
        options: plain,
        streamStdout: onStdout !== undefined,
        cancelled: signal?.aborted ?? false,
      } satisfies ToProgramThread);
      signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  private startWorker(): Worker {
    // Beside this file in dist/src/common (the .deb ships dist/src whole).
    const worker = new Worker(join(__dirname, 'program-worker.js'));
    worker.unref();
    worker.on('message', (message: FromProgramThread) => this.receive(worker, message));
    const fail = (why: string) => {
      if (this.worker === worker) this.worker = undefined;
      for (const pending of [...this.pending.values()]) {
        pending.done();
        pending.reject(
          new Error(`the thread that starts programs stopped (${why}); the program's outcome is unknown`),
        );
      }
    };
    worker.on('error', (error) => fail(error.message));
    worker.on('exit', (code) => fail(`exit code ${code}`));
    return worker;
  }

  private receive(worker: Worker, message: FromProgramThread): void {
    const pending = this.pending.get(message.id);
    if (message.kind === 'stdout') {
      const ack = () => worker.postMessage({ kind: 'ack', id: message.id } satisfies ToProgramThread);
      if (!pending?.onStdout || pending.consumerError) return ack();
      pending.onStdout(message.chunk).then(ack, (error: Error) => {
        pending.consumerError = error;
        worker.postMessage({ kind: 'cancel', id: message.id } satisfies ToProgramThread);
      });
      return;
    }
    if (!pending) return;
    pending.done();
    if (message.kind === 'done') pending.resolve(message.result);
    else pending.reject(pending.consumerError ?? new ProgramFailed(message.failure));
  }
}
