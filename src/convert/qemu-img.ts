import { Injectable } from '@nestjs/common';
import { Observable } from 'rxjs';
import { commandError, run } from '../common/exec';
import { lastProgressPercent } from './progress-parser';

/** What `qemu-img info --output=json` tells about an image (the fields we use). */
export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize?: number;
  backingFilename?: string;
  dataFile?: string;
  corrupt?: boolean;
}

export interface ConvertOptions {
  sourceFormat: string;
  /** qemu-img cache mode of the destination; never the default `unsafe`, which does not flush. */
  targetCache: 'none' | 'writeback';
  /** Skip writing zeros because the target already reads as zeros (fresh sparse file, thin LV). */
  targetIsZero: boolean;
  /** Receives a promise that settles once qemu-img has exited, so a rollback can wait for it. */
  track?: (exited: Promise<unknown>) => void;
}

/** Adapter over the qemu-img program. */
@Injectable()
export class QemuImg {
  async info(
    path: string,
    format: string,
    options: { signal?: AbortSignal; timeoutMs: number },
  ): Promise<ImageInfo> {
    // -f pins the format: qemu-img never probes, so a raw image cannot be read as something else.
    const args = ['info', '--output=json', '-f', format, path];
    try {
      const { stdout } = await run('qemu-img', args, options);
      const json = JSON.parse(stdout) as Record<string, unknown>;
      const specific = (json['format-specific'] as { data?: Record<string, unknown> } | undefined)?.data;
      return {
        format: String(json.format),
        virtualSize: Number(json['virtual-size']),
        actualSize: json['actual-size'] === undefined ? undefined : Number(json['actual-size']),
        backingFilename: (json['backing-filename'] ?? json['full-backing-filename']) as string | undefined,
        dataFile: specific?.['data-file'] as string | undefined,
        corrupt: specific?.corrupt as boolean | undefined,
      };
    } catch (error) {
      throw commandError('qemu-img info', error);
    }
  }

  /**
   * Writes the image as raw data into an existing target (`-n`: never create or truncate it).
   * Emits the percentage done; completes when qemu-img has exited successfully (the data is
   * flushed: -t none or writeback both end with an fdatasync). Unsubscribing kills qemu-img.
   */
  convert(source: string, target: string, options: ConvertOptions): Observable<number> {
    return new Observable<number>((subscriber) => {
      const abort = new AbortController();
      const args = [
        'convert',
        '-p',
        '-n',
        '-W',
        '-f',
        options.sourceFormat,
        '-O',
        'raw',
        '-t',
        options.targetCache,
      ];
      if (options.targetIsZero) args.push('--target-is-zero');
      args.push(source, target);
      const child = run('qemu-img', args, { signal: abort.signal });
      options.track?.(child.catch(() => undefined));
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (chunk: string) => {
        const percent = lastProgressPercent(chunk);
        if (percent !== undefined) subscriber.next(percent);
      });
      child.then(
        () => subscriber.complete(),
        (error) => subscriber.error(commandError('qemu-img convert', error)),
      );
      return () => {
        if (child.exitCode === null) abort.abort();
      };
    });
  }
}
