import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lvcreateArgs, thinSnapshotArgs } from './lvm-cli';

describe('lvm argument builders', () => {
  it('a thin snapshot: no size (a size would make an old-style COW snapshot), -kn, activated, no wipe', () => {
    const args = thinSnapshotArgs('vg', 'lvp-base-0123456789abcdef', 'vm-1', ['owner', 'lvp-base']);
    assert.deepEqual(args, [
      '--yes',
      '-s',
      '-kn',
      '-ay',
      '--addtag',
      'owner',
      '--addtag',
      'lvp-base',
      '-n',
      'vm-1',
      'vg/lvp-base-0123456789abcdef',
    ]);
    assert.ok(!args.includes('-L') && !args.includes('-V'), 'no size');
    assert.ok(!args.includes('--wipesignatures'), 'the content of the snapshot is the point');
  });

  it('a new LV: signatures wiped, tagged', () => {
    assert.deepEqual(lvcreateArgs('vm-1', 'owner'), [
      '--yes',
      '--wipesignatures',
      'y',
      '--addtag',
      'owner',
      '-n',
      'vm-1',
    ]);
  });
});
