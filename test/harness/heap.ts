import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Daemon } from './daemon';
import { waitFor } from './wait';

/** Node option to give the daemon so that liveHeapBytes() can ask it for a heap snapshot. */
export const HEAP_SNAPSHOT_OPTION = '--heapsnapshot-signal=SIGUSR2';

/**
 * The daemon's live JS heap in bytes, compiled code left out: it writes a heap snapshot on SIGUSR2 (taking one runs a full
 * garbage collection first), and the sum of the snapshot's node sizes is what survived. Unlike RSS,
 * this does not depend on when V8 last chose to collect, so it shows a leak and not garbage.
 * `dir` is the daemon's working directory, where Node writes the snapshot.
 */
export async function liveHeapBytes(daemon: Daemon, dir: string): Promise<number> {
  const snapshots = () => readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot'));
  const before = new Set(snapshots());
  process.kill(daemon.pid, 'SIGUSR2');
  const file = await waitFor('the heap snapshot', () => snapshots().find((f) => !before.has(f)), 60_000, 200);
  const path = join(dir, file);
  // The file appears when writing starts; it parses once it is complete.
  const snapshot = await waitFor(
    'the heap snapshot to be complete',
    () => JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshot,
    60_000,
    500,
  );
  rmSync(path);
  const { node_fields: fields, node_types: types } = snapshot.snapshot.meta;
  const stride = fields.length;
  const sizeAt = fields.indexOf('self_size');
  const typeAt = fields.indexOf('type');
  // Compiled code grows as V8 optimises hot paths under load; it is not state the daemon keeps.
  const code = types[typeAt].indexOf('code');
  let total = 0;
  for (let i = 0; i < snapshot.nodes.length; i += stride) {
    if (snapshot.nodes[i + typeAt] !== code) total += snapshot.nodes[i + sizeAt];
  }
  return total;
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...string[]] } };
  nodes: number[];
}
