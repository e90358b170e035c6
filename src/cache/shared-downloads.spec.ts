import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ImageRequest } from './image-store';
import { downloadKey, everyMs } from './shared-downloads';

const URL_A = 's3://images/a.qcow2';
const SHA = 'ab'.repeat(32);
const expected = { sha256: SHA, origin: 'the request' };

describe('downloadKey: which requests share one transfer', () => {
  const cases: [string, ImageRequest, ImageRequest, boolean][] = [
    [
      'the same object version',
      { ref: { url: URL_A, etag: 'e1', size: 5 } },
      { ref: { url: URL_A, etag: 'e1', size: 5 } },
      true,
    ],
    [
      'another etag',
      { ref: { url: URL_A, etag: 'e1', size: 5 } },
      { ref: { url: URL_A, etag: 'e2', size: 5 } },
      false,
    ],
    [
      'another size',
      { ref: { url: URL_A, etag: 'e1', size: 5 } },
      { ref: { url: URL_A, etag: 'e1', size: 6 } },
      false,
    ],
    [
      'another Last-Modified',
      { ref: { url: URL_A, lastModified: 'Mon' } },
      { ref: { url: URL_A, lastModified: 'Tue' } },
      false,
    ],
    ['another URL', { ref: { url: URL_A } }, { ref: { url: 's3://images/b.qcow2' } }, false],
    [
      'the same expected digest from two URLs',
      { ref: { url: URL_A }, expected },
      { ref: { url: 'https://x/a.qcow2' }, expected },
      true,
    ],
    ['a digest and no digest for one URL', { ref: { url: URL_A }, expected }, { ref: { url: URL_A } }, false],
  ];
  for (const [what, first, second, shared] of cases) {
    it(`${shared ? 'shares' : 'does not share'}: ${what}`, () => {
      assert.equal(downloadKey(first) === downloadKey(second), shared);
    });
  }
});

describe('everyMs: how often a download tells its jobs its progress', () => {
  it('opens once per interval, and whenever forced', () => {
    let now = 1000;
    const due = everyMs(50, () => now);
    assert.equal(due(), true, 'the first is always told');
    now += 49;
    assert.equal(due(), false);
    assert.equal(due(true), true, 'the last bytes are always told');
    now += 49;
    assert.equal(due(), false, 'a forced opening restarts the interval');
    now += 1;
    assert.equal(due(), true);
  });
});
