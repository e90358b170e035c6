import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { privateDirProblem, type FoundDir } from './private-dir';

describe('privateDirProblem: a directory the daemon writes in must be a real one only it can write', () => {
  const us = 1000;
  const dir = (over: Partial<FoundDir>): FoundDir => ({
    symlink: false,
    directory: true,
    uid: us,
    mode: 0o40700,
    ...over,
  });
  const cases: [string, FoundDir, RegExp | undefined][] = [
    ['ours, mode 0700', dir({}), undefined],
    ['ours, mode 0755 (others may read, not write)', dir({ mode: 0o40755 }), undefined],
    ['a symlink (to anywhere)', dir({ symlink: true }), /^a symbolic link$/],
    ['a regular file', dir({ directory: false }), /^not a directory$/],
    ['owned by another user', dir({ uid: 0 }), /owned by uid 0, not by this daemon's user \(uid 1000\)/],
    ['group-writable', dir({ mode: 0o40770 }), /writable by group or others \(mode 0770\)/],
    ['world-writable', dir({ mode: 0o40707 }), /writable by group or others \(mode 0707\)/],
    ['world-writable with the sticky bit (like /tmp)', dir({ mode: 0o41777 }), /mode 01777/],
  ];
  for (const [what, found, problem] of cases) {
    it(`${problem ? 'refuses' : 'accepts'} a directory that is ${what}`, () => {
      const said = privateDirProblem(found, us);
      if (problem) assert.match(said ?? '', problem);
      else assert.equal(said, undefined);
    });
  }
});
