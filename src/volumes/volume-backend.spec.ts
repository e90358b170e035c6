import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GIB, isReusableSize } from './volume-backend';

describe('isReusableSize: an existing volume within ±5 % of the requested size is reused', () => {
  const requested = 100 * GIB;
  const cases: [string, number, boolean][] = [
    ['exactly the requested size', 100 * GIB, true],
    ['1 byte smaller', 100 * GIB - 1, true],
    ['1 byte larger', 100 * GIB + 1, true],
    ['exactly 5 % smaller (95 GiB)', 95 * GIB, true],
    ['exactly 5 % larger (105 GiB)', 105 * GIB, true],
    ['5 % and 1 byte smaller', 95 * GIB - 1, false],
    ['5 % and 1 byte larger', 105 * GIB + 1, false],
    ['10 % smaller', 90 * GIB, false],
    ['twice as large', 200 * GIB, false],
    ['empty', 0, false],
  ];
  for (const [what, existing, reusable] of cases) {
    it(`${reusable ? 'reuses' : 'does not reuse'} a 100 GiB request's volume that is ${what}`, () => {
      assert.equal(isReusableSize(existing, requested), reusable);
    });
  }

  it('measures the 5 % against the requested size, not the existing one', () => {
    // 1 GiB apart: within 5 % of 20 GiB (the existing size) but not of 19 GiB (the requested size).
    assert.equal(isReusableSize(20 * GIB, 19 * GIB), false);
    assert.equal(isReusableSize(19 * GIB, 20 * GIB), true);
  });

  it('holds the boundary exactly for every whole-GiB size divisible by 20 up to 64 TiB', () => {
    for (let gb = 20; gb <= 65536; gb += 20) {
      const size = gb * GIB;
      const tolerance = size / 20;
      assert.equal(isReusableSize(size + tolerance, size), true, `${gb} GiB +5 %`);
      assert.equal(isReusableSize(size - tolerance, size), true, `${gb} GiB -5 %`);
      assert.equal(isReusableSize(size + tolerance + 1, size), false, `${gb} GiB +5 % +1 byte`);
      assert.equal(isReusableSize(size - tolerance - 1, size), false, `${gb} GiB -5 % -1 byte`);
    }
  });
});
