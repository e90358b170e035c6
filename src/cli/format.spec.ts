import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CacheListDto } from '../cache/cache.dto';
import { bar, cacheText, formatBytes, formatDuration, stageLine, type StageLine } from './format';

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
      'stage streaming: its download and write lines carry their own labels',
      { stage: 'streaming', label: 'streaming write', bytesTotal: 16 * 1024 ** 2 },
      /^ {2}streaming write +\[#{4}\.{26}\] +13% +2\.00 MiB \/ 16\.0 MiB +1\.00 MiB\/s +ETA 0:14$/,
    ],
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

describe('lvp cache ls', () => {
  const listing = (bases: CacheListDto['bases']): CacheListDto => ({
    entries: [],
    total_bytes: 0,
    total_entries: 0,
    max_bytes: 1024 ** 3,
    max_entries: 50,
    hits: 1,
    misses: 1,
    evictions: 0,
    bases,
    base_total_bytes: bases.reduce((sum, b) => sum + b.size, 0),
    base_max_bytes: 100 * 1024 ** 3,
    base_max_count: 20,
  });
  const base = {
    sha256: 'a'.repeat(64),
    virtual_size: 2 * 1024 ** 3,
    size: 1024 ** 3,
    raw_sha256: 'b'.repeat(64),
    created_at: '2026-12-02T04:00:00.000Z',
    last_used_at: '2026-12-02T04:10:00.000Z',
    cloning: 1,
  };

  it('lists the golden bases with their size and last use', () => {
    const text = cacheText(listing([base]));
    assert.match(text, /BASE OF SHA256/);
    assert.match(
      text,
      new RegExp(`${'a'.repeat(64)}\\s+2\\.00 GiB\\s+1\\.00 GiB\\s+cloning 1\\s+2026-12-02T04:10:00\\.000Z`),
    );
    assert.match(text, /1 base, 1\.00 GiB of 100 GiB$/);
  });

  it('says nothing of bases when there are none (or the daemon is older and sends none)', () => {
    assert.doesNotMatch(cacheText(listing([])), /BASE/);
    const old = { ...listing([]), bases: undefined } as unknown as CacheListDto;
    assert.doesNotMatch(cacheText(old), /BASE/);
  });
});
