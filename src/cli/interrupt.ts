import { createInterface, type Interface } from 'node:readline';
import type { JobView } from './job-view';

export interface InterruptOptions {
  jobId: string;
  view: JobView;
  /** Whether a person can answer a question (stdin and stderr are terminals). */
  interactive: boolean;
  /** Asks the daemon to cancel the job; the event stream then reports the outcome. */
  cancel(): Promise<void>;
  /** Stops following and lets the job go on. */
  detach(): void;
}

/**
 * Ctrl-C while lvp follows a job. On a terminal it asks whether to cancel the job (default: no)
 * and a second Ctrl-C at the question detaches; without one it detaches at once. It never
 * cancels a job without a "y": a stray Ctrl-C must not throw away an hour of conversion.
 */
export class InterruptHandler {
  private prompt?: Interface;
  private readonly listener = () => this.interrupted();

  constructor(private readonly options: InterruptOptions) {
    process.on('SIGINT', this.listener);
  }

  /** Stops listening; closes a question still open (the job ended meanwhile). */
  dispose(): void {
    process.off('SIGINT', this.listener);
    if (this.prompt) {
      const prompt = this.prompt;
      this.prompt = undefined;
      prompt.close();
      process.stderr.write('\n');
    }
  }

  private interrupted(): void {
    const { view, jobId } = this.options;
    if (!this.options.interactive) return this.options.detach();
    if (this.prompt) return; // readline reports Ctrl-C at the question itself
    view.pause();
    const prompt = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    this.prompt = prompt;
    let answered = false;
    // Ctrl-C at the question: the person wants out, not a cancelled job.
    prompt.on('SIGINT', () => {
      answered = true;
      this.prompt = undefined;
      prompt.close();
      process.stderr.write('\n');
      this.options.detach();
    });
    // Ctrl-D: no answer, which is "no".
    prompt.on('close', () => {
      if (answered || this.prompt !== prompt) return;
      this.prompt = undefined;
      process.stderr.write('\n');
      view.resume();
    });
    prompt.question(`Cancel job ${jobId}? [y/N] `, (answer) => {
      answered = true;
      this.prompt = undefined;
      prompt.close();
      if (/^y(es)?$/i.test(answer.trim())) {
        view.resume();
        view.notice(`cancelling job ${jobId}...`);
        this.options.cancel().catch((error: Error) => view.notice(`could not cancel: ${error.message}`));
      } else {
        view.resume();
        view.notice(`not cancelled; still following job ${jobId} (Ctrl-C again to be asked again)`);
      }
    });
  }
}
