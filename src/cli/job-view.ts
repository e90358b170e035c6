import { MultiBar, type SingleBar } from 'cli-progress';
import type { JobStatusDto } from '../jobs/dto/job-status.dto';
import type { ProvisionAcceptedDto } from '../jobs/dto/provision-request.dto';
import { formatBytes, formatDuration, overallLine, stageLine, type StageLine } from './format';

/** How a followed job is shown: bars on a terminal, JSON lines for scripts. */
export interface JobView {
  accepted(job: ProvisionAcceptedDto): void;
  event(event: string, status: JobStatusDto): void;
  /** Connection news and the like, for the operator. */
  notice(text: string): void;
  /** Stops drawing, e.g. while asking a question; resume() draws again. */
  pause(): void;
  resume(): void;
  /** The job ended (final) or lvp stopped following it (undefined). */
  close(final: JobStatusDto | undefined): void;
}

type Writable = Pick<NodeJS.WriteStream, 'write'>;

/**
 * One JSON object per line on stdout: the event name plus the job status exactly as the daemon
 * sent it, so the last line is what GET /api/v1/status/<id> answers (plus `"event":"end"`).
 */
export class JsonLinesView implements JobView {
  constructor(
    private readonly out: Writable = process.stdout,
    private readonly err: Writable = process.stderr,
  ) {}

  accepted(job: ProvisionAcceptedDto): void {
    this.out.write(`${JSON.stringify({ event: 'accepted', ...job })}\n`);
  }

  event(event: string, status: JobStatusDto): void {
    this.out.write(`${JSON.stringify({ event, ...status })}\n`);
  }

  notice(text: string): void {
    this.err.write(`lvp: ${text}\n`);
  }

  pause(): void {}
  resume(): void {}

  close(final: JobStatusDto | undefined): void {
    if (final) reportEnd(final, this.err, this.err);
  }
}

interface Row {
  line: StageLine;
  bar?: SingleBar;
  startedAt: number;
  /** Stage `streaming`: the write's line, below the download's (this row). */
  write?: Row;
}

/** A stage's first line, as lvp sees it start. */
function newRow(stage: string, label?: string): Row {
  return {
    line: {
      stage,
      label,
      state: stage === 'queued' ? 'queued' : 'running',
      bytesProcessed: 0,
      bytesTotal: null,
      bytesPerSecond: null,
      elapsed: 0,
    },
    startedAt: Date.now(),
  };
}

/**
 * A terminal view: the job's overall line, then one bar per stage as the job reaches it, with
 * bytes, throughput and ETA from the status (bytes_per_second is the daemon's). Stage `streaming`
 * (the image is written while it downloads) has two: the download, which goes on from the
 * `downloading` bar, and the write (write_bytes_processed of write_bytes_total; its rate is lvp's).
 * Drawn on stderr by cli-progress, which redraws in place ten times a second.
 */
export class ProgressBarsView implements JobView {
  private bars?: MultiBar;
  private overall?: SingleBar;
  private rows: Row[] = [];
  private last?: JobStatusDto;
  private paused = false;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly err: NodeJS.WriteStream = process.stderr,
  ) {}

  accepted(job: ProvisionAcceptedDto): void {
    this.err.write(`job ${job.job_id} ${job.status}\n`);
  }

  event(_event: string, status: JobStatusDto): void {
    this.last = status;
    if (!this.paused) this.draw(status);
  }

  notice(text: string): void {
    if (this.bars) this.bars.log(`lvp: ${text}\n`);
    else this.err.write(`lvp: ${text}\n`);
  }

  pause(): void {
    this.paused = true;
    this.stopBars();
  }

  resume(): void {
    this.paused = false;
    if (this.last) this.draw(this.last);
  }

  close(final: JobStatusDto | undefined): void {
    if (final) {
      this.paused = false;
      this.draw(final);
    }
    this.stopBars();
    if (!final) return;
    reportEnd(final, this.out, this.err);
  }

  private draw(status: JobStatusDto): void {
    if (!this.bars) {
      this.bars = new MultiBar({
        stream: this.err,
        format: (_options, _params, payload: { text: () => string }) => payload.text(),
        hideCursor: true,
        gracefulExit: false,
        fps: 10,
      });
      this.overall = this.bars.create(1, 0, { text: () => (this.last ? overallLine(this.last) : '') });
      // After a pause, the stages drawn before stay on screen above; only the current one is redrawn.
      const current = this.rows.at(-1);
      if (current) current.bar = this.addBar(current);
      if (current?.write) current.write.bar = this.addBar(current.write);
    }
    const final = ['completed', 'failed', 'cancelled'].includes(status.status);
    const stage = status.progress.stage ?? (status.status === 'pending' ? 'queued' : undefined);
    let row = this.rows.at(-1);
    if (stage && row?.line.stage !== stage) {
      if (stage === 'streaming' && row?.line.stage === 'downloading' && row.line.state === 'running') {
        // The download goes on in `streaming`: its bar stays, relabelled; the write's joins it.
        row.line.stage = stage;
        row.line.label = 'streaming download';
      } else {
        if (row && row.line.state === 'running') this.finish(row, 'done');
        row = newRow(stage, stage === 'streaming' ? 'streaming download' : undefined);
        row.bar = this.addBar(row);
        this.rows.push(row);
      }
      if (stage === 'streaming') {
        row.write = newRow(stage, 'streaming write');
        row.write.bar = this.addBar(row.write);
      }
    }
    if (row && row.line.state !== 'done') {
      const p = status.progress;
      row.line.bytesProcessed = p.bytes_processed;
      row.line.bytesTotal = p.bytes_total;
      // Keep the last rate seen: the final status has none, the "done" line still shows it.
      row.line.bytesPerSecond = p.bytes_per_second ?? row.line.bytesPerSecond;
      row.line.queuePosition = status.queue_position;
      if (row.write && typeof p.write_bytes_total === 'number') {
        const write = row.write.line;
        write.bytesProcessed = Math.max(write.bytesProcessed, p.write_bytes_processed ?? 0);
        write.bytesTotal = p.write_bytes_total;
        const seconds = (Date.now() - row.write.startedAt) / 1000;
        if (seconds > 0.5 && write.bytesProcessed > 0) write.bytesPerSecond = write.bytesProcessed / seconds;
      }
      if (final)
        this.finish(row, status.status === 'completed' ? 'done' : (status.status as StageLine['state']));
    }
    this.overall?.update(status.progress.percent / 100);
  }

  private finish(row: Row, state: StageLine['state']): void {
    row.line.state = state;
    if (row.write && row.write.line.state === 'running') {
      row.write.line.state = state;
      // A write that ends done wrote the whole image; the last status during the stage may be older.
      if (state === 'done' && row.write.line.bytesTotal)
        row.write.line.bytesProcessed = row.write.line.bytesTotal;
    }
  }

  private addBar(row: Row): SingleBar {
    return this.bars!.create(1, 0, {
      text: () => {
        if (row.line.state === 'running' || row.line.state === 'queued') {
          row.line.elapsed = (Date.now() - row.startedAt) / 1000;
        }
        return stageLine(row.line);
      },
    });
  }

  private stopBars(): void {
    // Draw once more first: notices logged since the last redraw would be lost otherwise.
    this.bars?.update();
    this.bars?.stop();
    this.bars = undefined;
    this.overall = undefined;
  }
}

/** The one-paragraph outcome: the volume on success, the daemon's error text otherwise. */
function reportEnd(final: JobStatusDto, out: Writable, err: Writable): void {
  const took =
    final.started_at && final.finished_at
      ? ` in ${formatDuration((Date.parse(final.finished_at) - Date.parse(final.started_at)) / 1000)}`
      : '';
  if (final.status === 'completed') {
    const what = final.volume_name
      ? `volume ${final.volume_name} (${final.volume_size_gb} GiB${final.volume_path ? `, ${final.volume_path}` : ''})`
      : `image cached${final.image_path ? ` (${final.image_path})` : ''}`;
    const size = final.progress.bytes_total ? `, ${formatBytes(final.progress.bytes_total)}` : '';
    out.write(
      `completed: ${what}${took}${size}${final.image_sha256 ? `, sha256 ${final.image_sha256}` : ''}` +
        `${final.checksum_verified ? ' (verified)' : ''}\n`,
    );
  } else if (final.status === 'failed') {
    err.write(`lvp: job ${final.job_id} failed: ${final.error ?? 'no reason given'} (${final.error_code})\n`);
  } else if (final.status === 'cancelled') {
    err.write(`lvp: job ${final.job_id} cancelled: ${final.error ?? 'cancelled'}\n`);
  }
}
