import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bar, formatBytes, formatDuration, stageLine, type StageLine } from './format';

describe('terminal formatting', () => {
  it('writes sizes in binary units', () => {
    const cases: [number, string][] = [
      [0, '0 B'],
      [1023, '1023 B'],
      [1536, '1.50 KiB'],
      [8716288, '8.31 MiB'],
      [20 * 1024 ** 3, '20.0 GiB'],
      [700 * 1024 ** 3, '700 GiB'],
    ];
    for (const [bytes, text] of cases) assert.equal(formatBytes(bytes), text, String(bytes));
  });

  it('writes durations as m:ss or h:mm:ss', () => {
    const cases: [number, string][] = [
      [0, '0:00'],
      [4.4, '0:04'],
      [75, '1:15'],
      [3725, '1:02:05'],
    ];
    for (const [seconds, text] of cases) assert.equal(formatDuration(seconds), text);
  });

  it('draws bars in ASCII, clamped to 0-100 %', () => {
    assert.equal(bar(0, 4), '[....]');
    assert.equal(bar(0.5, 4), '[##..]');
    assert.equal(bar(2, 4), '[####]');
  });

  const base: StageLine = {
    stage: 'downloading',
    state: 'running',
    bytesProcessed: 2 * 1024 ** 2,
    bytesTotal: 8 * 1024 ** 2,
    bytesPerSecond: 1024 ** 2,
    elapsed: 2,
  };
  const cases: [string, Partial<StageLine>, RegExp][] = [
    [
      'a running stage with a size: share, bytes, throughput, ETA',
      {},
      /downloading +\[#{8}\.{22}\] +25% +2\.00 MiB \/ 8\.00 MiB +1\.00 MiB\/s +ETA 0:06$/,
    ],
    [
      'a running stage without a size: the time it has taken so far',
      { stage: 'inspecting', bytesProcessed: 0, bytesTotal: null, bytesPerSecond: null, elapsed: 3 },
      /inspecting +\[\.{30}\] +\.\.\. +0:03$/,
    ],
    [
      'a finished stage: full, "done", its size, rate and time',
      { state: 'done' },
      /100% +done +8\.00 MiB +1\.00 MiB\/s +0:02$/,
    ],
    ['a failed stage keeps where it stopped', { state: 'failed' }, /\[#{8}\.{22}\] +25% +failed$/],
    [
      'a queued job: its place in the queue',
      { stage: 'queued', state: 'queued', queuePosition: 2 },
      /waiting, position 2 in the queue$/,
    ],
  ];
  for (const [name, change, expected] of cases) {
    it(`stage line: ${name}`, () => assert.match(stageLine({ ...base, ...change }), expected));
  }
});
