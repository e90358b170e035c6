import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reconcileStore, StoreMismatch } from './store-recovery';

describe('reconcileStore: start-up makes the index and the store directory agree', () => {
  const cases: { what: string; files: string[]; indexed: string[]; expected: StoreMismatch }[] = [
    {
      what: 'both agree',
      files: ['a', 'b'],
      indexed: ['a', 'b'],
      expected: { missing: [], strays: [], expanded: [] },
    },
    {
      what: 'a row without its file',
      files: ['a'],
      indexed: ['a', 'b'],
      expected: { missing: ['b'], strays: [], expanded: [] },
    },
    {
      what: 'a file without its row (a crash before the fsync)',
      files: ['a', 'b'],
      indexed: ['a'],
      expected: { missing: [], strays: ['b'], expanded: [] },
    },
    {
      what: 'copies kept with their image',
      files: ['a', 'a.unpacked', 'a.expanded'],
      indexed: ['a'],
      expected: { missing: [], strays: [], expanded: ['a'] },
    },
    {
      what: 'copies of an image that is gone',
      files: ['b.unpacked', 'b.expanded'],
      indexed: [],
      expected: { missing: [], strays: ['b.unpacked', 'b.expanded'], expanded: [] },
    },
    {
      what: 'copies of a row whose file is gone',
      files: ['b.expanded'],
      indexed: ['b'],
      expected: { missing: ['b'], strays: ['b.expanded'], expanded: [] },
    },
    { what: 'an empty cache', files: [], indexed: [], expected: { missing: [], strays: [], expanded: [] } },
  ];
  for (const { what, files, indexed, expected } of cases) {
    it(what, () => assert.deepEqual(reconcileStore(files, indexed), expected));
  }
});
