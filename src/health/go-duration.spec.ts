import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { goDuration } from './go-duration';

describe('goDuration: uptime as the original service printed it (Go time.Duration)', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [45, '45s'],
    [60, '1m0s'],
    [61, '1m1s'],
    [3600, '1h0m0s'],
    [9045, '2h30m45s'],
    [90061, '25h1m1s'],
  ];
  for (const [seconds, expected] of cases) {
    it(`prints ${seconds} s as ${expected}`, () => assert.equal(goDuration(seconds), expected));
  }
});
