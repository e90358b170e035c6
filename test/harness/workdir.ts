import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory for one test file; removed by the returned cleanup. */
export function makeWorkdir(label: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `lvp-${label}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
