import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ImageRequest } from './image-store';
import { PendingRow, wouldHit } from './durable-index';

const SHA = 'ab'.repeat(32);
const URL_A = 's3://images/a.qcow2';
const row: PendingRow = {
  sha256: SHA,
  size: 5,
  format: 'qcow2',
  url: URL_A,
  etag: 'e1',
  storedAt: '2030-01-01T00:00:00.000Z',
};

describe('wouldHit: a request waits for the fsync of a new file only if it would hit it', () => {
  const cases: [string, ImageRequest, boolean][] = [
    ['its digest', { ref: { url: 'https://elsewhere/x' }, expected: { sha256: SHA, origin: 'o' } }, true],
    [
      'another digest, same source',
      { ref: { url: URL_A, etag: 'e1', size: 5 }, expected: { sha256: 'cd'.repeat(32), origin: 'o' } },
      false,
    ],
    ['its source version (URL, etag, size)', { ref: { url: URL_A, etag: 'e1', size: 5 } }, true],
    ['another etag', { ref: { url: URL_A, etag: 'e2', size: 5 } }, false],
    ['another size', { ref: { url: URL_A, etag: 'e1', size: 6 } }, false],
    ['another URL', { ref: { url: 's3://images/b.qcow2', etag: 'e1', size: 5 } }, false],
    ['no etag (a source without versions)', { ref: { url: URL_A, size: 5 } }, false],
  ];
  for (const [what, request, hit] of cases) {
    it(`${hit ? 'waits' : 'does not wait'}: ${what}`, () => assert.equal(wouldHit(row, request), hit));
  }

  it('never matches a source version for a file that came without an etag', () => {
    assert.equal(wouldHit({ ...row, etag: undefined }, { ref: { url: URL_A, size: 5 } }), false);
  });
});
