import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { lastProgressPercent } from './progress-parser';

describe('lastProgressPercent: the percentage in a chunk of `qemu-img convert -p` output', () => {
  const cases: [string, string, number | undefined][] = [
    ['one progress line', '    (12.34/100%)\r', 12.34],
    ['the start', '    (0.00/100%)\r', 0],
    ['the end', '    (100.00/100%)\r', 100],
    ['a whole number', '(7/100%)', 7],
    [
      'several lines in one chunk: the last one',
      '    (1.00/100%)\r    (2.50/100%)\r    (40.10/100%)\r',
      40.1,
    ],
    ['a final newline after the last line', '    (99.00/100%)\r    (100.00/100%)\r\n', 100],
    ['text around the progress', 'qemu-img: note\n    (33.30/100%)\rtrailing', 33.3],
    ['a value above 100: clamped', '(250/100%)', 100],
    ['an empty chunk', '', undefined],
    ['a chunk without progress', 'qemu-img: Could not open foo\n', undefined],
    ['half a progress line (the rest comes in the next chunk)', '    (12.3', undefined],
    ['a percentage not out of 100', '(12.34/50%)', undefined],
  ];
  for (const [what, chunk, percent] of cases) {
    it(`${percent === undefined ? 'finds none in' : `reads ${percent} from`} ${what}`, () => {
      assert.equal(lastProgressPercent(chunk), percent);
    });
  }

  it('reads 100 from what a real qemu-img convert -p prints', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lvp-progress-'));
    try {
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'in.qcow2'), '4M']);
      const output = execFileSync(
        'qemu-img',
        ['convert', '-p', '-O', 'raw', join(dir, 'in.qcow2'), join(dir, 'out.raw')],
        { encoding: 'utf8' },
      );
      assert.match(output, /\(0\.00\/100%\)\r/);
      assert.equal(lastProgressPercent(output), 100);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
