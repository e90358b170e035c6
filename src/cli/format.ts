import type { CacheListDto } from '../cache/cache.dto';
import type { JobListDto } from '../jobs/dto/job-list.dto';
import type { JobStatusDto } from '../jobs/dto/job-status.dto';

/** Pure text formatting for the terminal: sizes, rates, durations, bars, tables. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB"; binary units, as volume sizes are GiB. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

export function formatRate(bytesPerSecond: number | null | undefined): string {
  return bytesPerSecond ? `${formatBytes(bytesPerSecond)}/s` : '';
}

/** Seconds as m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** Seconds left at the current rate, when there is one. */
export function etaSeconds(progress: JobStatusDto['progress']): number | undefined {
  const { bytes_processed, bytes_total, bytes_per_second } = progress;
  if (!bytes_total || !bytes_per_second || bytes_per_second <= 0) return undefined;
  return Math.max(0, (bytes_total - bytes_processed) / bytes_per_second);
}

/** A fixed-width bar in ASCII, so it reads the same in any terminal and locale. */
export function bar(fraction: number, width = 30): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

export function formatPercent(fraction: number): string {
  return `${(Math.min(1, Math.max(0, fraction)) * 100).toFixed(0).padStart(3)}%`;
}

/** What one stage line shows. */
export interface StageLine {
  stage: string;
  /** What the line is called when not just its stage (`streaming` has a download and a write line). */
  label?: string;
  state: 'running' | 'done' | 'failed' | 'cancelled' | 'queued';
  bytesProcessed: number;
  bytesTotal: number | null;
  bytesPerSecond: number | null;
  /** Seconds since lvp saw the stage start. */
  elapsed: number;
  queuePosition?: number;
}

const STAGE_WIDTH = 20;

/**
 * One line per stage: bar, share done, bytes, throughput and ETA while it runs; for stages that
 * report no bytes, the elapsed time.
 */
export function stageLine(line: StageLine): string {
  const label = `  ${(line.label ?? line.stage).padEnd(STAGE_WIDTH)}`;
  if (line.state === 'queued') {
    const position = line.queuePosition ? `position ${line.queuePosition} in the queue` : 'in the queue';
    return `${label}${bar(0)}  waiting, ${position}`;
  }
  const sized = line.bytesTotal !== null && line.bytesTotal > 0;
  const fraction = line.state === 'done' ? 1 : sized ? line.bytesProcessed / line.bytesTotal! : 0;
  const bytes = sized
    ? `${formatBytes(line.bytesProcessed)} / ${formatBytes(line.bytesTotal!)}`
    : line.bytesProcessed > 0
      ? formatBytes(line.bytesProcessed)
      : '';
  const parts = [label + bar(fraction), sized || line.state === 'done' ? formatPercent(fraction) : ' ...'];
  if (line.state === 'running') {
    if (bytes) parts.push(bytes);
    if (line.bytesPerSecond) parts.push(formatRate(line.bytesPerSecond));
    const eta = sized
      ? etaSeconds({
          stage: line.stage,
          percent: 0,
          bytes_processed: line.bytesProcessed,
          bytes_total: line.bytesTotal,
          bytes_per_second: line.bytesPerSecond,
          write_bytes_processed: null,
          write_bytes_total: null,
        })
      : undefined;
    parts.push(eta === undefined ? formatDuration(line.elapsed) : `ETA ${formatDuration(eta)}`);
  } else {
    parts.push(line.state === 'done' ? 'done' : line.state);
    if (bytes && line.state === 'done') parts.push(sized ? formatBytes(line.bytesTotal!) : bytes);
    if (line.state === 'done' && line.bytesPerSecond) parts.push(formatRate(line.bytesPerSecond));
    if (line.state === 'done') parts.push(formatDuration(line.elapsed));
  }
  return parts.join('  ');
}

/** The line above the stages: the job, its status and the overall percentage. */
export function overallLine(status: JobStatusDto): string {
  const what = status.volume_name ? `-> ${status.volume_name}` : '(prefetch)';
  return `job ${status.job_id.slice(0, 8)} ${status.status.padEnd(9)} ${bar(status.progress.percent / 100)} ${status.progress.percent.toFixed(1).padStart(5)}%  ${what}`;
}

/** `lvp status` on a terminal. */
export function statusText(s: JobStatusDto): string {
  const rows: [string, string | null | undefined][] = [
    ['job', `${s.job_id} (${s.kind})`],
    [
      'status',
      s.status +
        (s.error_code ? ` (${s.error_code})` : '') +
        (s.queue_position ? `, position ${s.queue_position} in the queue` : ''),
    ],
    ['error', s.error],
    [
      'progress',
      `${s.progress.percent.toFixed(1)}%` +
        (s.progress.stage ? `, stage ${s.progress.stage}` : '') +
        (s.progress.bytes_total
          ? `, ${formatBytes(s.progress.bytes_processed)} / ${formatBytes(s.progress.bytes_total)}`
          : '') +
        (s.progress.bytes_per_second ? `, ${formatRate(s.progress.bytes_per_second)}` : '') +
        // Stage `streaming`: the bytes above are the download; the write runs alongside.
        (s.progress.write_bytes_total
          ? `; written ${formatBytes(s.progress.write_bytes_processed ?? 0)} / ${formatBytes(s.progress.write_bytes_total)}`
          : ''),
    ],
    ['image', s.image_url + (s.image_type ? ` (${s.image_type})` : '')],
    [
      'volume',
      s.volume_name
        ? `${s.volume_name}, ${s.volume_size_gb} GiB` +
          (s.volume_path ? ` at ${s.volume_path}` : '') +
          (s.volume_reused ? ' (reused)' : '')
        : null,
    ],
    [
      'sha256',
      s.image_sha256
        ? `${s.image_sha256} (${s.checksum_verified ? 'verified' : 'not verified'}${s.cache_hit ? ', from the cache' : ''})`
        : null,
    ],
    ['correlation', s.correlation_id],
    ['created', s.created_at],
    ['started', s.started_at],
    ['finished', s.finished_at],
  ];
  return rows
    .filter((row): row is [string, string] => Boolean(row[1]))
    .map(([k, v]) => `${k.padEnd(12)}${v}`)
    .join('\n');
}

/** Left-aligned columns separated by two spaces. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function jobsText(list: JobListDto): string {
  const rows = list.jobs.map((j) => [
    j.job_id,
    j.status,
    j.progress.stage ?? '-',
    `${j.progress.percent.toFixed(0)}%`,
    j.volume_name ?? `(${j.kind})`,
    j.created_at,
    j.error ?? '',
  ]);
  const shown =
    list.total > list.jobs.length
      ? `${list.jobs.length} of ${list.total} jobs (from ${list.offset}; --limit/--offset for more)`
      : `${list.total} job${list.total === 1 ? '' : 's'}`;
  return `${table(['JOB', 'STATUS', 'STAGE', 'DONE', 'VOLUME', 'CREATED', 'ERROR'], rows)}\n${shown}`;
}

export function cacheText(cache: CacheListDto): string {
  const rows = cache.entries.map((e) => [
    e.sha256,
    // An old daemon sends no expanded_bytes.
    e.expanded_bytes > 0
      ? `${formatBytes(e.size)} +${formatBytes(e.expanded_bytes)} expanded`
      : formatBytes(e.size),
    e.format,
    String(e.use_count),
    e.in_use_by > 0 ? `in use by ${e.in_use_by}` : '',
    e.last_used_at,
    e.sources.map((s) => s.url).join(' '),
  ]);
  const limit = cache.max_bytes ? ` of ${formatBytes(cache.max_bytes)}` : '';
  return (
    `${table(['SHA256', 'SIZE', 'FORMAT', 'USES', 'READERS', 'LAST USED', 'SOURCES'], rows)}\n` +
    `${cache.total_entries} entr${cache.total_entries === 1 ? 'y' : 'ies'}, ${formatBytes(cache.total_bytes)}${limit}; ` +
    `hits ${cache.hits}, misses ${cache.misses}, evictions ${cache.evictions}` +
    basesText(cache)
  );
}

/** The golden bases new file volumes are cloned from; nothing when there are none (or an old daemon). */
function basesText(cache: CacheListDto): string {
  if (!cache.bases?.length) return '';
  const rows = cache.bases.map((b) => [
    b.sha256,
    formatBytes(b.virtual_size),
    formatBytes(b.size),
    b.cloning > 0 ? `cloning ${b.cloning}` : '',
    b.last_used_at,
  ]);
  return (
    `\n\n${table(['BASE OF SHA256', 'VIRTUAL SIZE', 'ON DISK', 'CLONES', 'LAST USED'], rows)}\n` +
    `${cache.bases.length} base${cache.bases.length === 1 ? '' : 's'}, ${formatBytes(cache.base_total_bytes)} of ${formatBytes(cache.base_max_bytes)}`
  );
}
