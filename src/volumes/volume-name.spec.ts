import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { volumeNameProblem } from './volume-name';

describe('volumeNameProblem: LVM logical volume name rules (lvm(8) "VALID NAMES")', () => {
  describe('accepts', () => {
    const valid: [string, string][] = [
      ['a plain name', 'vm-101-disk-0'],
      ['letters, digits and every allowed punctuation mark', 'Ab9+_.-'],
      ['a single character', 'a'],
      ['a name of exactly 127 characters', 'v'.repeat(127)],
      ['a hyphen that is not the first character', 'a-'],
      ['three dots (only "." and ".." are reserved)', '...'],
      ['"snapshot" when it is not at the start', 'my-snapshot'],
      ['"Snapshot" in another case (the prefix rule is case-sensitive)', 'Snapshot1'],
      ['a reserved word without its leading underscore', 'tmeta'],
    ];
    for (const [what, name] of valid) {
      it(`${what}: ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…` : name)}`, () => {
        assert.equal(volumeNameProblem(name), undefined);
      });
    }
  });

  describe('refuses', () => {
    const invalid: [string, string, string][] = [
      ['the empty name', '', 'must not be empty'],
      ['a name of 128 characters', 'v'.repeat(128), 'must be at most 127 characters (has 128)'],
      ['a name starting with a hyphen', '-vm', "must not start with '-'"],
      ['a lone hyphen', '-', "must not start with '-'"],
      ['"."', '.', "must not be '.' or '..'"],
      ['".."', '..', "must not be '.' or '..'"],
      ['a slash', 'vg/lv', 'may contain only letters, digits and + _ . -'],
      ['a space', 'my disk', 'may contain only letters, digits and + _ . -'],
      ['a non-ASCII letter', 'caf\u00e9', 'may contain only letters, digits and + _ . -'],
      ['a colon', 'vm:1', 'may contain only letters, digits and + _ . -'],
      ['a newline', 'vm\n', 'may contain only letters, digits and + _ . -'],
      ['the name "snapshot"', 'snapshot', "must not start with 'snapshot' or 'pvmove'"],
      ['a name starting with "snapshot"', 'snapshot-of-vm1', "must not start with 'snapshot' or 'pvmove'"],
      ['the name "pvmove"', 'pvmove', "must not start with 'snapshot' or 'pvmove'"],
      ['a name starting with "pvmove"', 'pvmove0', "must not start with 'snapshot' or 'pvmove'"],
    ];
    for (const [what, name, problem] of invalid) {
      it(`${what}: ${problem}`, () => {
        assert.equal(volumeNameProblem(name), problem);
      });
    }
  });

  describe('refuses a name containing a part LVM reserves for its internal volumes', () => {
    const reserved = [
      '_cdata',
      '_cmeta',
      '_corig',
      '_cpool',
      '_cvol',
      '_iorig',
      '_mimage',
      '_mlog',
      '_pmspare',
      '_rimage',
      '_rmeta',
      '_tdata',
      '_tmeta',
      '_vdata',
      '_vorigin',
      '_wcorig',
    ];
    for (const part of reserved) {
      it(`"${part}", anywhere in the name`, () => {
        const expected = `must not contain '${part}' (reserved by LVM)`;
        assert.equal(volumeNameProblem(`pool${part}`), expected);
        assert.equal(volumeNameProblem(`pool${part}_1`), expected);
        assert.equal(volumeNameProblem(`${part}x`), expected);
      });
    }
  });
});
