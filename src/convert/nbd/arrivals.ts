/**
 * How much of a growing file is on disk, for readers that must never see bytes that have not
 * arrived. The writer (a download) calls `advance` after each write to the file has completed,
 * `finish` when the file is whole, `fail` when it never will be; a reader awaits `waitFor(end)`,
 * which resolves once the first `end` bytes are there and rejects when the file failed first.
 * Waiters sit in a list sorted by end: each advance wakes only those it satisfies.
 */
export class Arrivals {
  private arrived = 0;
  private failure?: Error;
  private waiters: { end: number; resolve: () => void; reject: (error: Error) => void }[] = [];

  /** `size`: the file's full length, known before the first byte (the source's stat or HEAD). */
  constructor(readonly size: number) {}

  get bytes(): number {
    return this.arrived;
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** The first `bytes` bytes of the file are on disk (never moves back). */
  advance(bytes: number): void {
    if (this.failure || bytes <= this.arrived) return;
    this.arrived = Math.min(bytes, this.size);
    let ready = 0;
    while (ready < this.waiters.length && this.waiters[ready].end <= this.arrived) ready++;
    if (ready === 0) return;
    const woken = this.waiters.splice(0, ready);
    for (const waiter of woken) waiter.resolve();
  }

  finish(): void {
    this.advance(this.size);
  }

  /** The file will not grow any more: waiting readers fail with `error`, and so does every later wait beyond what arrived. */
  fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    const waiting = this.waiters;
    this.waiters = [];
    for (const waiter of waiting) waiter.reject(error);
  }

  /** Resolves once bytes [0, end) are on disk. */
  waitFor(end: number): Promise<void> {
    if (end <= this.arrived) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    if (end > this.size)
      return Promise.reject(new RangeError(`byte ${end} is beyond the file's ${this.size} bytes`));
    return new Promise((resolve, reject) => {
      let at = this.waiters.length;
      while (at > 0 && this.waiters[at - 1].end > end) at--;
      this.waiters.splice(at, 0, { end, resolve, reject });
    });
  }

  /** How many readers are waiting (for tests and the job log). */
  get waiting(): number {
    return this.waiters.length;
  }
}
