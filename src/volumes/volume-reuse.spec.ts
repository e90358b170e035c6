import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VolumeInUseError, VolumeSizeMismatchError } from '../common/errors';
import { GIB, type ExistingVolume } from './volume-backend';
import { checkReusable } from './volume-reuse';

describe('checkReusable: whether an existing volume may be overwritten', () => {
  const requested = 10 * GIB;
  const volume = (sizeBytes: number, inUseBy?: string): ExistingVolume => ({
    name: 'vm-1',
    path: '/var/lib/volumes/vm-1.raw',
    sizeBytes,
    inUseBy,
  });
  const cases: [string, ExistingVolume, (new (...args: never[]) => Error) | undefined][] = [
    ['of the requested size and not open', volume(10 * GIB), undefined],
    ['5 % smaller and not open', volume(9.5 * GIB), undefined],
    ['5 % larger and not open', volume(10.5 * GIB), undefined],
    [
      'of the requested size but held open by a VM',
      volume(10 * GIB, 'qemu-system-x86 (pid 42)'),
      VolumeInUseError,
    ],
    [
      'held open and of another size (in use is said first)',
      volume(20 * GIB, 'qemu (pid 1)'),
      VolumeInUseError,
    ],
    ['more than 5 % smaller', volume(9.5 * GIB - 1), VolumeSizeMismatchError],
    ['more than 5 % larger', volume(10.5 * GIB + 1), VolumeSizeMismatchError],
    ['empty', volume(0), VolumeSizeMismatchError],
  ];
  for (const [what, existing, refusal] of cases) {
    it(`${refusal ? `refuses (${refusal.name})` : 'reuses'} a volume ${what}`, () => {
      if (refusal) assert.throws(() => checkReusable(existing, requested), refusal);
      else assert.doesNotThrow(() => checkReusable(existing, requested));
    });
  }

  it("names the volume and both sizes in the size refusal, for the operator's decision", () => {
    assert.throws(() => checkReusable(volume(20 * GIB), requested), {
      message: /volume vm-1 already exists with 21474836480 bytes, .* requested 10737418240 bytes/,
    });
  });
});
