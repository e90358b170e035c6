import { Injectable, Optional } from '@nestjs/common';
import { Observable } from 'rxjs';
import { commandError, run } from '../common/exec';
import { Settings } from '../config/settings';
import { lastProgressPercent } from './progress-parser';

/** What `qemu-img info --output=json` tells about an image (the fields we use). */
export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize?: number;
  /** qcow2: bytes per cluster. */
  clusterSize?: number;
  backingFilename?: string;
  backingFormat?: string;
  dataFile?: string;
  corrupt?: boolean;
  /** vmdk: the files its extents name. */
  vmdkExtents?: string[];
}

/** How qemu-img may run on an untrusted image: wall clock, CPU seconds, address space. */
export interface InspectLimits {
  signal?: AbortSignal;
  timeoutMs: number;
  limits: { cpuSeconds: number; addressSpaceBytes: number };
}

export interface CheckResult {
  ok: boolean;
  /** qemu-img's own words, for the refusal message. */
  finding: string;
  /** qcow2 clusters stored compressed (zlib/zstd): every read of them decompresses. */
  compressedClusters: number;
  /** qcow2 clusters holding data (compressed or not). */
  allocatedClusters: number;
}

/** How the background copy of an inspected image may run. */
export interface ExpandOptions {
  signal: AbortSignal;
  timeoutMs: number;
  /** CPU seconds only: the image has passed inspection, and convert needs room for its threads. */
  limits: { cpuSeconds: number };
}

export interface ConvertOptions {
  sourceFormat: string;
  /** qemu-img cache mode of the destination; never the default `unsafe`, which does not flush. */
  targetCache: 'none' | 'writeback';
  /** Skip writing zeros because the target already reads as zeros (fresh sparse file, thin LV). */
  targetIsZero: boolean;
  /** Receives a promise that settles once qemu-img has exited, so a rollback can wait for it. */
  track?: (exited: Promise<unknown>) => void;
  /** A descriptor already open on the verified target: qemu-img writes through it, not `target`. */
  targetFd?: number;
}

/**
 * Where qemu-img finds a target handed to it as its fd 3. Opening /proc/self/fd/3 (a magic link)
 * reopens the very file that descriptor is open on, whatever its name now points to: the daemon
 * opens and verifies the volume (O_NOFOLLOW, fstat), and a symlink swapped in after that cannot
 * redirect the write. qemu-img 7.2 accepts it as a `-n -O raw` target with `-t none` (O_DIRECT)
 * and `-t writeback`, for files and block devices alike, and still takes its own lock on the
 * file. Not /dev/fd/3: that is a link udev or systemd makes, absent from a minimal /dev (the VM
 * suite's guest has none). Converting into a fresh temporary name and renaming it into place
 * would not do: a reused volume must be written in place (same inode, same LV).
 */
export const INHERITED_TARGET = '/proc/self/fd/3';

/** Adapter over the qemu-img program. */
@Injectable()
export class QemuImg {
  /** How far below the daemon's priority a job's qemu-img runs (JOB_NICE; 0 without settings: the benches' bare tool). */
  private readonly nice: number;

  constructor(@Optional() settings?: Settings) {
    this.nice = settings?.jobs.nice ?? 0;
  }

  /** The first line of `qemu-img --version` ("qemu-img version 7.2.x (Debian ...)"): the health check's answer. */
  async version(options: { signal?: AbortSignal; timeoutMs: number }): Promise<string> {
    try {
      const { stdout } = await run('qemu-img', ['--version'], options);
      return String(stdout).split('\n')[0].trim();
    } catch (error) {
      throw commandError('qemu-img --version', error);
    }
  }

  async info(path: string, format: string, options: InspectLimits): Promise<ImageInfo> {
    // -f pins the format: qemu-img never probes, so a raw image cannot be read as something else.
    const args = ['info', '--output=json', '-f', format, path];
    try {
      const { stdout } = await run('qemu-img', args, { ...options, nice: this.nice });
      const json = JSON.parse(stdout) as Record<string, unknown>;
      const specific = (json['format-specific'] as { data?: Record<string, unknown> } | undefined)?.data;
      const extents = specific?.extents as { filename?: string }[] | undefined;
      return {
        format: String(json.format),
        virtualSize: Number(json['virtual-size']),
        actualSize: json['actual-size'] === undefined ? undefined : Number(json['actual-size']),
        clusterSize: json['cluster-size'] === undefined ? undefined : Number(json['cluster-size']),
        backingFilename: (json['backing-filename'] ?? json['full-backing-filename']) as string | undefined,
        backingFormat: json['backing-filename-format'] as string | undefined,
        dataFile: specific?.['data-file'] as string | undefined,
        corrupt: specific?.corrupt as boolean | undefined,
        vmdkExtents: extents?.map((e) => String(e.filename)),
      };
    } catch (error) {
      throw commandError('qemu-img info', error);
    }
  }

  /** qemu-img check: refuses corruption (leaked clusters waste space but read correctly). */
  async check(path: string, format: string, options: InspectLimits): Promise<CheckResult> {
    const args = ['check', '--output=json', '-f', format, path];
    try {
      const { stdout } = await run('qemu-img', args, { ...options, nice: this.nice });
      return { ok: true, finding: '', ...clusterCounts(stdout) };
    } catch (error) {
      const failed = error as { exitCode?: number; stdout?: string; stderr?: string; signal?: string };
      if (failed.exitCode === 3) {
        return { ok: true, finding: '', ...clusterCounts(failed.stdout) };
      }
      if (failed.exitCode === 2 || failed.exitCode === 1) {
        // The ERROR lines say what is wrong; leaked clusters are noise next to them.
        const lines = String(failed.stderr ?? '')
          .trim()
          .split('\n');
        const errors = lines.filter((line) => /error|corrupt/i.test(line));
        const stderr = (errors.length > 0 ? errors : lines).slice(0, 3).join(' | ');
        let finding = stderr;
        try {
          const report = JSON.parse(String(failed.stdout)) as Record<string, number>;
          finding = `${report.corruptions ?? 0} corruption(s), ${report['check-errors'] ?? 0} check error(s)`;
          if (stderr) finding += `: ${stderr}`;
        } catch {
          // not JSON: stderr says it
        }
        return { ok: false, finding, compressedClusters: 0, allocatedClusters: 0 };
      }
      throw commandError('qemu-img check', error);
    }
  }

  /**
   * Writes a qcow2 with compressed clusters as a new qcow2 without compression (`target` must not
   * exist): holds the same allocated clusters, so it stays compact, and reading it costs no
   * decompression. For an image that has passed inspection: the source format is pinned, and
   * qemu-img runs in the background (nice, idle-ish I/O) under the given limits. The caller
   * fsyncs the result (qemu-img's default cache mode does not flush).
   */
  async expand(source: string, target: string, options: ExpandOptions): Promise<void> {
    try {
      await run('qemu-img', expandArgs(source, target), { ...options, background: true });
    } catch (error) {
      throw commandError('qemu-img convert (expanding compressed clusters)', error);
    }
  }

  /**
   * Whether a raw file reads exactly as the image does (`qemu-img compare`: exit 0 identical,
   * 1 different, 2 an error). Checks a golden base against the image it was made from before any
   * volume is cloned from it. In the background: no job waits for it but the one making the base.
   */
  async sameContent(raw: string, image: string, format: string, options: ExpandOptions): Promise<boolean> {
    try {
      await run('qemu-img', compareArgs(raw, image, format), { ...options, background: true });
      return true;
    } catch (error) {
      if ((error as { exitCode?: number }).exitCode === 1) return false;
      throw commandError('qemu-img compare', error);
    }
  }

  /**
   * Writes the image as raw data into an existing target (`-n`: never create or truncate it),
   * through `options.targetFd` when given (`target` then only names it in messages).
   * Emits the percentage done; completes when qemu-img has exited successfully (the data is
   * flushed: -t none or writeback both end with an fdatasync). Unsubscribing kills qemu-img.
   */
  convert(source: string, target: string, options: ConvertOptions): Observable<number> {
    return new Observable<number>((subscriber) => {
      const abort = new AbortController();
      const inherited = options.targetFd !== undefined;
      const args = convertArgs(source, inherited ? INHERITED_TARGET : target, options);
      let exited = false;
      const child = run('qemu-img', args, {
        signal: abort.signal,
        fd3: options.targetFd,
        nice: this.nice,
        // -p prints "(12.34/100%)\r" lines: ASCII, so a chunk never splits a character.
        onStdout: async (chunk) => {
          const percent = lastProgressPercent(Buffer.from(chunk).toString('latin1'));
          if (percent !== undefined) subscriber.next(percent);
        },
      });
      options.track?.(child.catch(() => undefined));
      child.then(
        () => {
          exited = true;
          subscriber.complete();
        },
        (error) => {
          exited = true;
          subscriber.error(commandError('qemu-img convert', error));
        },
      );
      return () => {
        if (!exited) abort.abort();
      };
    });
  }
}

/** The cluster counts of `qemu-img check --output=json` (`compressed-clusters` is absent when 0). */
function clusterCounts(stdout: unknown): Pick<CheckResult, 'compressedClusters' | 'allocatedClusters'> {
  const count = (value: unknown) => {
    const n = Number(value ?? 0);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  };
  try {
    const report = JSON.parse(String(stdout)) as Record<string, unknown>;
    return {
      compressedClusters: count(report['compressed-clusters']),
      allocatedClusters: count(report['allocated-clusters']),
    };
  } catch {
    return { compressedClusters: 0, allocatedClusters: 0 };
  }
}

/**
 * qemu-img's arguments for the uncompressed copy of a compressed qcow2: both formats pinned, no
 * `-c`, so every cluster is written plain; -W because the order of writes into a new file does not
 * matter.
 */
export function expandArgs(source: string, target: string): string[] {
  return ['convert', '-W', '-f', 'qcow2', '-O', 'qcow2', source, target];
}

/**
 * qemu-img's arguments for comparing a raw file with an image: both formats pinned (never probed),
 * -q because the exit code is the answer; -s (strict) is left out so that unallocated and zeroed
 * areas compare equal, as they read the same.
 */
export function compareArgs(raw: string, image: string, format: string): string[] {
  return ['compare', '-q', '-f', 'raw', '-F', format, raw, image];
}

/**
 * Whether convertArgs passes --target-is-zero (skip writing zeros): only when the target reads as
 * zeros and only together with -t none. With -t writeback on a fresh sparse ext4 file its writes
 * averaged 21.6 ms instead of 0.8 ms (strace -c), 2.7x the time of leaving it out
 * (docs/performance.md).
 */
export function skipsZeroWrites(options: Pick<ConvertOptions, 'targetCache' | 'targetIsZero'>): boolean {
  return options.targetIsZero && options.targetCache === 'none';
}

/**
 * qemu-img's arguments for writing an image as raw data into an existing volume:
 * -n never create or truncate the target; -W lets writes complete out of order (measured 0.57 of
 * the default time on a loop device with -t none); -t none or writeback, never the default
 * `unsafe` (no flush); --target-is-zero as skipsZeroWrites says.
 */
export function convertArgs(
  source: string,
  target: string,
  options: Pick<ConvertOptions, 'sourceFormat' | 'targetCache' | 'targetIsZero'>,
): string[] {
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
  if (skipsZeroWrites(options)) args.push('--target-is-zero');
  args.push(source, target);
  return args;
}
