import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  linkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  checkRegularFile,
  openVerified,
  UnsafeFileError,
  volumeFileProblem,
  type FoundFile,
} from './safe-open';

describe('volumeFileProblem: only a regular file with one name may be a file volume', () => {
  const cases: [FoundFile, RegExp | undefined][] = [
    [{ kind: 'file', nlink: 1 }, undefined],
    [{ kind: 'file', nlink: 2 }, /regular file with 2 hard links/],
    [{ kind: 'symlink', nlink: 1, linkTarget: '/etc/passwd' }, /symbolic link \(to "\/etc\/passwd"\)/],
    [{ kind: 'symlink', nlink: 1, linkTarget: 'other.raw' }, /symbolic link \(to "other.raw"\)/],
    [{ kind: 'symlink', nlink: 1 }, /^a symbolic link$/],
    [{ kind: 'directory', nlink: 2 }, /^a directory$/],
    [{ kind: 'fifo', nlink: 1 }, /^a fifo \(named pipe\)$/],
    [{ kind: 'socket', nlink: 1 }, /^a socket$/],
    [{ kind: 'block device', nlink: 1 }, /^a block device$/],
    [{ kind: 'character device', nlink: 1 }, /^a character device$/],
  ];
  for (const [found, problem] of cases) {
    it(`${problem ? 'refuses' : 'accepts'} ${found.kind} with ${found.nlink} link(s)${found.linkTarget ? ` to ${found.linkTarget}` : ''}`, () => {
      const said = volumeFileProblem(found);
      if (problem) assert.match(said ?? '', problem);
      else assert.equal(said, undefined);
    });
  }
});

describe('checkRegularFile and openVerified on a real filesystem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lvp-safe-open-'));
  const outside = join(dir, 'outside.bin');
  writeFileSync(outside, 'precious outside bytes');
  after(() => rmSync(dir, { recursive: true, force: true }));

  const refuses = async (work: Promise<unknown>, problem: RegExp) => {
    const error = await work.then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof UnsafeFileError, String(error));
    assert.match(error.problem, problem);
  };

  it('finds nothing where nothing is, and the identity of a regular file', async () => {
    assert.equal(await checkRegularFile(join(dir, 'absent.raw')), undefined);
    const found = await checkRegularFile(outside);
    assert.equal(found?.ino, statSync(outside).ino);
    assert.equal(found?.size, 22);
  });

  it('refuses a symlink, a dangling symlink, a directory and a fifo without following or blocking', async () => {
    symlinkSync(outside, join(dir, 'link.raw'));
    symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling.raw'));
    mkdirSync(join(dir, 'dir.raw'));
    execFileSync('mkfifo', [join(dir, 'fifo.raw')]);
    await refuses(checkRegularFile(join(dir, 'link.raw')), /symbolic link/);
    await refuses(checkRegularFile(join(dir, 'dangling.raw')), /symbolic link/);
    await refuses(checkRegularFile(join(dir, 'dir.raw')), /directory/);
    await refuses(checkRegularFile(join(dir, 'fifo.raw')), /fifo/);
    await refuses(openVerified(join(dir, 'link.raw')), /symbolic link/);
    await refuses(openVerified(join(dir, 'dangling.raw')), /symbolic link/);
    await refuses(openVerified(join(dir, 'dir.raw')), /directory/);
    // No reader: O_NONBLOCK makes this ENXIO at once instead of a job hanging on the open.
    await refuses(openVerified(join(dir, 'fifo.raw')), /fifo/);
    assert.equal(readFileSync(outside, 'utf8'), 'precious outside bytes');
  });

  it('refuses a second hard link to the file', async () => {
    const volume = join(dir, 'linked.raw');
    linkSync(outside, volume);
    await refuses(checkRegularFile(volume), /2 hard links/);
    await refuses(openVerified(volume), /2 hard links/);
  });

  it('opens the checked file, and refuses one swapped for a symlink or another file after the check', async () => {
    const volume = join(dir, 'vm.raw');
    writeFileSync(volume, 'volume');
    const checked = (await checkRegularFile(volume))!;
    const handle = await openVerified(volume, checked);
    await handle.close();

    // The race the check alone cannot close: the name now leads elsewhere.
    renameSync(volume, join(dir, 'vm.raw.old'));
    symlinkSync(outside, volume);
    await refuses(openVerified(volume, checked), /symbolic link/);
    rmSync(volume);
    writeFileSync(volume, 'an impostor');
    await refuses(openVerified(volume, checked), /no longer the file that was checked/);
    assert.equal(readFileSync(outside, 'utf8'), 'precious outside bytes');
  });
});
