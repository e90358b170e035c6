/**
 * What a long-running piece of work needs from the job it serves: the job's id, and a way to
 * register cleanup that must finish before the job's rollback runs (a child process exiting, a
 * partial file being removed). Unsubscribing from a stage starts the cleanup; `track` lets the
 * job wait for it.
 */
export interface JobScope {
  readonly id: string;
  track(settled: Promise<unknown>): void;
}
