/** What a file's pins tell their owner. */
export interface PinEvents<T> {
  /**
   * The last job reading the file let go (holds may remain): what waits for "no job reads it"
   * runs here (the fsync and index row, the expanded copy).
   */
  lastReader(file: T): void;
  /** No job reads the file and nothing holds it any more (a used-once file can go). */
  unused?(file: T): void;
}

/**
 * How many jobs read each file (by path; a cached image or a used-once one), and what else holds
 * it (a golden base's verification after its job). A file is pinned from the moment a download
 * places it until its last reader lets go; eviction and deletion skip it while anything pins or
 * holds it. A hold does not delay what waits for the jobs: the file's fsync and index row come
 * when its last job lets go, so a crash during a long verification does not cost the cached copy.
 */
export class ReaderPins<T extends { path: string }> {
  private readonly readers = new Map<string, number>();
  private readonly holds = new Map<string, number>();

  constructor(private readonly events: PinEvents<T>) {}

  pin(file: T): void {
    add(this.readers, file.path, 1);
  }

  /** Lets go of one pin; an unpin with no pin left counts as the last one. */
  unpin(file: T): void {
    if (add(this.readers, file.path, -1) > 0) return;
    this.events.lastReader(file);
    if (!this.holds.has(file.path)) this.events.unused?.(file);
  }

  /** A reader's pin taken now, let go by the function returned (once, however often it is called). */
  take(file: T): () => Promise<void> {
    this.pin(file);
    return once(() => this.unpin(file));
  }

  /** A hold taken now (not a reader: the file's fsync does not wait for it), let go by the function returned. */
  hold(file: T): () => Promise<void> {
    add(this.holds, file.path, 1);
    return once(() => {
      if (add(this.holds, file.path, -1) > 0 || this.readers.has(file.path)) return;
      this.events.unused?.(file);
    });
  }

  /** Readers and holds: eviction and deletion skip a file while this is above 0. */
  count(path: string): number {
    return (this.readers.get(path) ?? 0) + (this.holds.get(path) ?? 0);
  }
}

/** Adds `delta` to the count of `path` (a count that reaches 0 or below is dropped); returns the new count. */
function add(counts: Map<string, number>, path: string, delta: number): number {
  const count = (counts.get(path) ?? (delta < 0 ? 1 : 0)) + delta;
  if (count > 0) counts.set(path, count);
  else counts.delete(path);
  return count;
}

function once(letGo: () => void): () => Promise<void> {
  let done = false;
  return async () => {
    if (done) return;
    done = true;
    letGo();
  };
}
