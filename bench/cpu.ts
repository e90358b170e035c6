import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** USER_HZ: the unit of /proc/stat's counters (100 on every Linux this runs on). */
const TICKS_PER_SECOND = 100;

/** CPU-seconds the whole machine has spent busy (not idle, not waiting for I/O) since boot. */
export function busyCpuSeconds(): number {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/** Runs `step` and returns its result with the machine's busy CPU-seconds meanwhile. */
export async function withBusyCpu<T>(step: () => Promise<T>): Promise<{ result: T; cpuSeconds: number }> {
  const before = busyCpuSeconds();
  const result = await step();
  return { result, cpuSeconds: busyCpuSeconds() - before };
}

export const CORES = availableParallelism();
