/**
 * qemu-img convert -p writes "    (12.34/100%)\r" repeatedly to stdout. Returns the last
 * percentage found in a chunk, or undefined when the chunk holds none.
 */
export function lastProgressPercent(chunk: string): number | undefined {
  const matches = [...chunk.matchAll(/\((\d{1,3}(?:\.\d+)?)\/100%\)/g)];
  if (matches.length === 0) return undefined;
  const value = Number(matches[matches.length - 1][1]);
  return Math.min(100, Math.max(0, value));
}
