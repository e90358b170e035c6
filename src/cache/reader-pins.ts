/**
 * How many jobs read each file (by path; a cached image or a used-once one). A file is pinned
 * from the moment a download places it until its last reader lets go: eviction and deletion
 * skip it meanwhile, and what waits for "no one reads it" (fsync, the expanded copy, removing a
 * used-once file) runs in `onLastReader`.
 */
export class ReaderPins<T extends { path: string }> {
  private readonly readers = new Map<string, number>();

  constructor(private readonly onLastReader: (file: T) => void) {}

  pin(file: T): void {
    this.readers.set(file.path, this.count(file.path) + 1);
  }

  /** Lets go of one pin; an unpin with no pin left counts as the last one. */
  unpin(file: T): void {
    const left = (this.readers.get(file.path) ?? 1) - 1;
    if (left > 0) {
      this.readers.set(file.path, left);
      return;
    }
    this.readers.delete(file.path);
    this.onLastReader(file);
  }

  /** A pin taken now, let go by the function returned (once, however often it is called). */
  take(file: T): () => Promise<void> {
    this.pin(file);
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      this.unpin(file);
    };
  }

  count(path: string): number {
    return this.readers.get(path) ?? 0;
  }
}
