import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseEvictions, EvictionCandidate } from './eviction';

/** Entries named by letter; `a` was used longest ago. */
function entries(...sizes: number[]): EvictionCandidate[] {
  return sizes.map((size, i) => ({
    sha256: String.fromCharCode(97 + i),
    size,
    lastUsedAt: `2030-01-0${i + 1}T00:00:00.000Z`,
  }));
}

function names(chosen: EvictionCandidate[]): string[] {
  return chosen.map((e) => e.sha256);
}

describe('chooseEvictions: least recently used first, never one in use', () => {
  // [what, sizes (oldest first: a, b, c, ...), maxBytes, maxEntries, in use, evicted]
  const cases: [string, number[], number, number, string[], string[]][] = [
    ['within both limits: nothing', [10, 10], 20, 2, [], []],
    ['one byte over: the oldest', [10, 11], 20, 2, [], ['a']],
    ['over by bytes: oldest until it fits', [5, 5, 5, 5], 10, 9, [], ['a', 'b']],
    ['over by count: oldest until it fits', [1, 1, 1, 1], 99, 1, [], ['a', 'b', 'c']],
    ['a large old entry frees enough alone', [30, 5, 5], 20, 9, [], ['a']],
    ['the oldest in use: the next one goes', [10, 10, 10], 20, 9, ['a'], ['b']],
    ['all in use: nothing, over the limit', [10, 10], 5, 9, ['a', 'b'], []],
    ['what is in use alone exceeds: all the rest', [5, 30, 5], 20, 9, ['b'], ['a', 'c']],
    ['no entries allowed: every one not in use', [1, 1, 1], 99, 0, ['c'], ['a', 'b']],
    ['an empty cache: nothing', [], 0, 0, [], []],
  ];
  for (const [what, sizes, maxBytes, maxEntries, inUse, evicted] of cases) {
    it(what, () => {
      const chosen = chooseEvictions(entries(...sizes), { maxBytes, maxEntries }, (sha) =>
        inUse.includes(sha),
      );
      assert.deepEqual(names(chosen), evicted);
    });
  }

  it('orders by last use, not by the order it is given', () => {
    const given = entries(10, 10, 10).reverse();
    assert.deepEqual(names(chooseEvictions(given, { maxBytes: 10, maxEntries: 9 }, () => false)), ['a', 'b']);
  });
});
