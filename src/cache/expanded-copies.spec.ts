import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { whyNoExpandedCopy } from './expanded-copies';

const MIB = 1024 ** 2;

describe('whyNoExpandedCopy: a copy fits CACHE_MAX_BYTES with its image and leaves as much free as it takes', () => {
  const cases: [
    string,
    { imageBytes: number; estimatedBytes: number; maxBytes: number; freeBytes: number },
    RegExp | undefined,
  ][] = [
    [
      'room for both',
      { imageBytes: 10 * MIB, estimatedBytes: 40 * MIB, maxBytes: 100 * MIB, freeBytes: 1000 * MIB },
      undefined,
    ],
    [
      'exactly CACHE_MAX_BYTES with its image',
      { imageBytes: 10 * MIB, estimatedBytes: 90 * MIB, maxBytes: 100 * MIB, freeBytes: 1000 * MIB },
      undefined,
    ],
    [
      'one byte over CACHE_MAX_BYTES',
      { imageBytes: 10 * MIB, estimatedBytes: 90 * MIB + 1, maxBytes: 100 * MIB, freeBytes: 1000 * MIB },
      /exceed CACHE_MAX_BYTES/,
    ],
    [
      'exactly twice its size free',
      { imageBytes: 10 * MIB, estimatedBytes: 40 * MIB, maxBytes: 100 * MIB, freeBytes: 80 * MIB },
      undefined,
    ],
    [
      'one byte less than twice its size free',
      { imageBytes: 10 * MIB, estimatedBytes: 40 * MIB, maxBytes: 100 * MIB, freeBytes: 80 * MIB - 1 },
      /less than twice its size free/,
    ],
    [
      'both short: CACHE_MAX_BYTES is named first',
      { imageBytes: 10 * MIB, estimatedBytes: 200 * MIB, maxBytes: 100 * MIB, freeBytes: 0 },
      /exceed CACHE_MAX_BYTES/,
    ],
  ];
  for (const [what, room, reason] of cases) {
    it(`${reason ? 'makes none' : 'makes one'}: ${what}`, () => {
      const why = whyNoExpandedCopy(room);
      if (reason) assert.match(why ?? '', reason);
      else assert.equal(why, undefined);
    });
  }
});
