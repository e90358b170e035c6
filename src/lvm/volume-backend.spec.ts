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
    // 20 GiB requested: ±1 GiB. 21 GiB is within; 19 GiB is too (the rule is symmetric in bytes).
    assert.equal(isReusableSize(21 * GIB, 20 * GIB), true);
    assert.equal(isReusableSize(19 * GIB, 20 * GIB), true);
    // 21 GiB requested from a 20 GiB volume would be within 5 % of 20, but 1 GiB > 5 % of 21 GiB is false:
    // 5 % of 21 GiB is 1.05 GiB, so it is still reusable; 22 GiB from 20 GiB is not (2 > 1.1).
    assert.equal(isReusableSize(20 * GIB, 21 * GIB), true);
    assert.equal(isReusableSize(20 * GIB, 22 * GIB), false);
    // 5 % of 20 is 1, 5 % of 19 is 0.95: 20 GiB existing for a 19 GiB request is out of range.
    assert.equal(isReusableSize(20 * GIB, 19 * GIB), false);
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
