/**
 * The WAL checkpointer's thread (wal-checkpointer.ts): a connection of its own to the job
 * database, moving the WAL into the database file with a PASSIVE checkpoint every `intervalMs`
 * (it never waits for, nor blocks, the daemon's reads and writes). Stops on any message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointWorkerData {
  path: string;
  intervalMs: number;
}

/** What the thread tells the daemon: a checkpoint that failed (the daemon then checkpoints itself). */
export interface CheckpointFailure {
  error: string;
}

const { path, intervalMs } = workerData as CheckpointWorkerData;
const db = new Database(path, { fileMustExist: true });
// FULL, as the daemon's connection: the checkpoint fsyncs the WAL before it copies pages and the
// database file before the WAL may be reused.
db.pragma('synchronous = FULL');
db.pragma('busy_timeout = 5000');

const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    clearInterval(timer);
    parentPort!.postMessage({ error: (error as Error).message } satisfies CheckpointFailure);
  }
}, intervalMs);

parentPort!.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort!.close();
});
