/** The ids of pending jobs, first in first out. Only the runner's pump takes from it. */
export class JobQueue {
  private readonly ids: string[] = [];

  get length(): number {
    return this.ids.length;
  }

  push(jobId: string): void {
    this.ids.push(jobId);
  }

  /** The next job to start, or undefined when none waits. */
  take(): string | undefined {
    return this.ids.shift();
  }

  /** Takes a job out of the queue (cancel); false when it was not waiting. */
  remove(jobId: string): boolean {
    const index = this.ids.indexOf(jobId);
    if (index < 0) return false;
    this.ids.splice(index, 1);
    return true;
  }

  /** 1-based place of a pending job, or undefined. */
  position(jobId: string): number | undefined {
    const index = this.ids.indexOf(jobId);
    return index < 0 ? undefined : index + 1;
  }
}
