/** Pure helpers for the benchmark: summaries of repeated timings and the printed table. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Spread of repeated runs as (max - min) / median: how much to trust a ratio made from them. */
export function spread(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  return (Math.max(...values) - Math.min(...values)) / median(values);
}

export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Median of each variant's samples, rounded, with the raw samples kept for the JSON. */
export function summarize(
  samples: Record<string, number[]>,
): Record<string, { median: number; runs: number[] }> {
  const out: Record<string, { median: number; runs: number[] }> = {};
  for (const [name, runs] of Object.entries(samples)) {
    out[name] = { median: round(median(runs)), runs: runs.map((r) => round(r)) };
  }
  return out;
}

export interface Row {
  id: string;
  what: string;
  value: number;
  unit: string;
  goal: string;
  met: boolean;
}

/** The one table the bench prints: measured value next to its goal. */
export function formatTable(rows: readonly Row[]): string {
  const header = ['', 'measured', 'goal', 'met', 'what'];
  const lines = rows.map((r) => [
    r.id,
    `${Number.isFinite(r.value) ? round(r.value, 3) : 'n/a'} ${r.unit}`.trim(),
    r.goal,
    r.met ? 'yes' : 'NO',
    r.what,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}
