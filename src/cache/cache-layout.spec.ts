import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { CacheLayout } from './cache-layout';

const HEX = 'ab'.repeat(32);

describe('CacheLayout: where each cache file lives', () => {
  const layout = new CacheLayout('/var/cache/lvp/../lvp');

  const cases: [string, string, string][] = [
    ['the store', layout.storeDir, '/var/cache/lvp/sha256'],
    [
      'tmp/, beside the store (one filesystem: a rename puts a file in place)',
      layout.tmpDir,
      '/var/cache/lvp/tmp',
    ],
    ['an image, named by its digest', layout.entry(HEX), `/var/cache/lvp/sha256/${HEX}`],
    ['its expanded copy, beside it', layout.expanded(HEX), `/var/cache/lvp/sha256/${HEX}.expanded`],
    [
      'its unpacked form, beside it',
      layout.unpackedOf(layout.entry(HEX)),
      `/var/cache/lvp/sha256/${HEX}.unpacked`,
    ],
    [
      'the unpacked form of a used-once image, beside it in tmp/',
      layout.unpackedOf('/var/cache/lvp/tmp/x.once'),
      '/var/cache/lvp/tmp/x.once.unpacked',
    ],
  ];
  for (const [what, actual, expected] of cases) {
    it(`${what}: ${expected}`, () => assert.equal(actual, expected));
  }

  const partials: [string, () => string, RegExp][] = [
    ['a partial download', () => layout.partialDownload(), /^[0-9a-f-]{36}\.part$/],
    ['a used-once image', () => layout.usedOnce(HEX), new RegExp(`^${HEX}\\.[0-9a-f-]{36}\\.once$`)],
    [
      'an unpacking in progress',
      () => layout.unpacking(HEX),
      new RegExp(`^${HEX}\\.[0-9a-f-]{36}\\.unpacking$`),
    ],
    [
      'an expansion in progress',
      () => layout.expanding(HEX),
      new RegExp(`^${HEX}\\.[0-9a-f-]{36}\\.expanding$`),
    ],
  ];
  for (const [what, make, name] of partials) {
    it(`${what} goes to tmp/ (removed at start-up), under a new name each time`, () => {
      const first = make();
      assert.equal(dirname(first), layout.tmpDir);
      assert.match(first.slice(layout.tmpDir.length + 1), name);
      assert.notEqual(make(), first);
    });
  }
});
