import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BaseLayout, chooseBaseEvictions, sweepBases } from './base-layout';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe('sweepBases (start-up: what stays in VOLUME_DIR/.lvp-bases)', () => {
  const cached = (sha256: string) => sha256 === A;
  const cases: [string, string[], string[], string[]][] = [
    ['keeps a complete base of a cached image', [`${A}-1024.raw`, `${A}-1024.json`], [`${A}-1024`], []],
    ['removes a half-made base (crash while making it)', [`${A}-1024.partial`], [], [`${A}-1024.partial`]],
    ['removes a base whose record was never written', [`${A}-1024.raw`], [], [`${A}-1024.raw`]],
    ['removes a record without its base', [`${A}-1024.json`], [], [`${A}-1024.json`]],
    [
      'removes the base of an image no longer cached',
      [`${B}-1024.raw`, `${B}-1024.json`],
      [],
      [`${B}-1024.raw`, `${B}-1024.json`],
    ],
    ['removes what is no base at all', ['vm-1.raw', '.tmp'], [], ['vm-1.raw', '.tmp']],
    [
      'tells two sizes of one image apart',
      [`${A}-1024.raw`, `${A}-1024.json`, `${A}-2048.raw`],
      [`${A}-1024`],
      [`${A}-2048.raw`],
    ],
  ];
  for (const [title, names, keep, remove] of cases) {
    it(title, () => assert.deepEqual(sweepBases(names, cached), { keep, remove }));
  }
});

describe('BaseLayout', () => {
  it('keeps bases in VOLUME_DIR/.lvp-bases, named by digest and virtual size', () => {
    const layout = new BaseLayout('/v');
    const key = BaseLayout.key(A, 1024);
    assert.equal(layout.base(key), `/v/.lvp-bases/${A}-1024.raw`);
    assert.equal(layout.partial(key), `/v/.lvp-bases/${A}-1024.partial`);
    assert.equal(layout.record(key), `/v/.lvp-bases/${A}-1024.json`);
  });
});

describe('chooseBaseEvictions', () => {
  const base = (key: string, size: number, lastUsedAt: string) => ({ key, size, lastUsedAt });
  const old = base('old', 10, '2026-01-01');
  const mid = base('mid', 10, '2026-01-02');
  const recent = base('recent', 10, '2026-01-03');
  const none = () => false;
  it('removes nothing within the limits', () => {
    assert.deepEqual(chooseBaseEvictions([old, mid], { maxBytes: 20, maxCount: 2 }, none), []);
  });
  it('removes the least recently used beyond BASE_MAX_COUNT', () => {
    assert.deepEqual(chooseBaseEvictions([recent, old, mid], { maxBytes: 100, maxCount: 2 }, none), [old]);
  });
  it('removes as many as BASE_MAX_BYTES needs', () => {
    assert.deepEqual(chooseBaseEvictions([recent, old, mid], { maxBytes: 10, maxCount: 9 }, none), [
      old,
      mid,
    ]);
  });
  it('waits for a base a clone is being made from instead of removing a newer one', () => {
    const cloning = (key: string) => key === 'old';
    assert.deepEqual(chooseBaseEvictions([recent, old, mid], { maxBytes: 100, maxCount: 1 }, cloning), []);
  });
  it('removes everything when the limits are 0', () => {
    assert.deepEqual(chooseBaseEvictions([old, mid], { maxBytes: 0, maxCount: 0 }, none), [old, mid]);
  });
});
