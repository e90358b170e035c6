import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '@nestjs/common';
import type { Database } from 'better-sqlite3';
import type { CheckpointFailure, CheckpointWorkerData } from './wal-checkpoint-worker';

/** SQLite's own default (pages), restored when the thread cannot checkpoint. */
const AUTOCHECKPOINT_PAGES = 1000;

/**
 * Moves the job database's WAL into the database file from a thread of its own. SQLite's
 * automatic checkpoint runs inside the commit that takes the WAL past 1000 pages, on the
 * committing thread, and fsyncs the database file there: with better-sqlite3 that thread is the
 * event loop, and a CPU profile of the daemon showed one such commit holding it 367 ms while two
 * downloads filled the page cache. So the daemon's connection turns the automatic checkpoint off
 * and this thread checkpoints every `intervalMs`. If the thread fails, the automatic checkpoint is
 * turned back on (the WAL must not grow without end) and the failure is logged.
 */
export class WalCheckpointer {
  /** Settles when the thread has ended (stopped, or failed at its start). */
  private readonly ended: Promise<unknown>;

  private constructor(private readonly worker: Worker) {
    this.ended = new Promise((resolve) => worker.once('exit', resolve));
  }

  static start(db: Database, logger: Logger, intervalMs = 5000): WalCheckpointer {
    const workerData: CheckpointWorkerData = { path: db.name, intervalMs };
    const worker = new Worker(join(__dirname, 'wal-checkpoint-worker.js'), { workerData });
    worker.unref();
    const checkpointer = new WalCheckpointer(worker);
    db.pragma('wal_autocheckpoint = 0');
    const fallBack = (error: string) => {
      if (db.open) db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
      logger.warn({ error, msg: 'the job database is checkpointed on the event loop again' });
    };
    worker.on('message', (failure: CheckpointFailure) => fallBack(failure.error));
    worker.on('error', (error) => fallBack(String(error?.message ?? JSON.stringify(error))));
    return checkpointer;
  }

  /** Closes the thread's connection and waits for the thread to end (before the database closes). */
  async stop(): Promise<void> {
    this.worker.ref(); // waited for: it keeps the process alive until it has ended
    this.worker.postMessage('stop');
    await this.ended;
  }
}
