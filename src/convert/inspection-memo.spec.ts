import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InspectionMemo } from './inspection-memo';

const verdict = (virtualSize: number) => ({ info: { format: 'qcow2', virtualSize } });

describe('InspectionMemo', () => {
  it('recalls a verdict only for the same digest, file and format', () => {
    const memo = new InspectionMemo();
    memo.remember({ sha256: 'a', path: '/cache/a', format: 'qcow2' }, verdict(1));
    assert.equal(memo.recall({ sha256: 'a', path: '/cache/a', format: 'qcow2' })?.info.virtualSize, 1);
    assert.equal(memo.recall({ sha256: 'a', path: '/cache/a', format: 'raw' }), undefined);
    assert.equal(memo.recall({ sha256: 'a', path: '/cache/a.expanded', format: 'qcow2' }), undefined);
    assert.equal(memo.recall({ sha256: 'b', path: '/cache/a', format: 'qcow2' }), undefined);
  });

  it('keeps at most 1024 verdicts, forgetting the least recently used', () => {
    const memo = new InspectionMemo();
    const key = (i: number) => ({ sha256: String(i), path: `/cache/${i}`, format: 'raw' });
    for (let i = 0; i < 1024; i++) memo.remember(key(i), verdict(i));
    assert.ok(memo.recall(key(0))); // used: now the most recent
    memo.remember(key(1024), verdict(1024));
    assert.equal(memo.size, 1024);
    assert.ok(memo.recall(key(0)));
    assert.equal(memo.recall(key(1)), undefined);
    assert.ok(memo.recall(key(1024)));
  });
});
