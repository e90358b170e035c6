import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { makeWorkdir } from '../harness/workdir';

/**
 * The directories the daemon creates and removes files in (CACHE_DIR, its sha256/ and tmp/, the
 * directory of DB_PATH) must be real directories only it can write, and the files it only reads
 * (API tokens, TLS material) must be regular files. Each case plants the problem in a fresh state
 * directory, with a file outside that the daemon would otherwise delete or hang on, and shows the
 * daemon refusing to start with a message that names the path and the fix.
 */
describe('paths the daemon writes or reads are refused when they are links, shared or not files', () => {
  const work = makeWorkdir('private-paths');
  after(() => work.cleanup());

  /** A state directory with an outside directory holding a file that must survive. */
  const setup = (label: string) => {
    const dir = join(work.dir, label);
    const outside = join(dir, 'elsewhere');
    mkdirSync(join(dir, 'var/cache'), { recursive: true, mode: 0o700 });
    mkdirSync(outside);
    writeFileSync(join(outside, 'precious.txt'), 'must survive\n');
    return { dir, outside, cache: join(dir, 'var/cache') };
  };
  const survived = (outside: string) => {
    assert.deepEqual(readdirSync(outside), ['precious.txt']);
    assert.equal(readFileSync(join(outside, 'precious.txt'), 'utf8'), 'must survive\n');
  };
  const refuses = async (dir: string, pattern: RegExp, env: Record<string, string> = {}) => {
    const { code, output } = await Daemon.runToExit({ dir, env });
    assert.notEqual(code, 0, output);
    assert.match(output, pattern);
    // Killed by runToExit's timeout would be a hang (a fifo read), not a refusal.
    assert.doesNotMatch(output, /listening on https?:\/\//);
  };

  it('refuses a cache tmp/ that is a symlink, instead of clearing the directory it leads to', async () => {
    const { dir, outside, cache } = setup('tmp-link');
    // Before: start-up "removed partial downloads" from tmp/ and so deleted precious.txt.
    symlinkSync(outside, join(cache, 'tmp'));
    await refuses(dir, /the cache tmp directory .*var\/cache\/tmp is a symbolic link;.*only it can write/);
    survived(outside);
  });

  it('refuses a cache store sha256/ that is a symlink, instead of removing its "strays"', async () => {
    const { dir, outside, cache } = setup('store-link');
    symlinkSync(outside, join(cache, 'sha256'));
    await refuses(dir, /the cache store .*var\/cache\/sha256 is a symbolic link/);
    survived(outside);
  });

  it('refuses a cache tmp/ that is a regular file', async () => {
    const { dir, cache } = setup('tmp-file');
    writeFileSync(join(cache, 'tmp'), 'not a directory');
    await refuses(dir, /the cache tmp directory .*var\/cache\/tmp is not a directory/);
  });

  it('refuses a CACHE_DIR that others may write, and one owned by another user', async () => {
    const { dir, cache } = setup('cache-shared');
    chmodSync(cache, 0o777);
    await refuses(dir, /CACHE_DIR .*var\/cache is writable by group or others \(mode 0777\)/);
    chmodSync(cache, 0o700);
    chownSync(cache, 65534, 65534);
    await refuses(dir, /CACHE_DIR .*var\/cache is owned by uid 65534, not by this daemon's user/);
  });

  it("refuses a DB_PATH directory that others may write (SQLite's -wal and -shm are created there)", async () => {
    const { dir } = setup('db-shared');
    const db = join(dir, 'db');
    mkdirSync(db);
    chmodSync(db, 0o775);
    await refuses(dir, /the directory of DB_PATH .*\/db is writable by group or others \(mode 0775\)/, {
      DB_PATH: join(db, 'jobs.db'),
    });
  });

  it('refuses an API tokens file or a TLS key that is a fifo, instead of hanging at start-up', async () => {
    const { dir } = setup('fifos');
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    await refuses(dir, /API_TOKENS_FILE .*fifo is a fifo \(named pipe\); it must name a regular file/, {
      API_TOKENS_FILE: fifo,
    });
    writeFileSync(join(dir, 'cert.pem'), 'unused');
    await refuses(dir, /TLS_KEY_FILE .*fifo is a fifo \(named pipe\); it must name a regular file/, {
      TLS_CERT_FILE: join(dir, 'cert.pem'),
      TLS_KEY_FILE: fifo,
    });
  });
});
