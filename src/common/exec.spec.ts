import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandError, run } from './exec';

describe('run: the one way programs are started', () => {
  it('applies CPU and address-space limits to programs that read untrusted input', async () => {
    const { stdout } = await run('sh', ['-c', 'ulimit -t; ulimit -v'], {
      limits: { cpuSeconds: 30, addressSpaceBytes: 1024 * 1024 * 1024 },
    });
    assert.deepEqual(stdout.split('\n'), ['30', String(1024 * 1024)]);
  });

  it('runs programs with the die-with-parent signal set', async () => {
    const { stdout } = await run('sh', [
      '-c',
      'grep -c . /proc/self/status >/dev/null; cat /proc/self/status',
    ]);
    // setpriv --pdeathsig KILL leaves no trace in /proc/self/status; it is visible as the wrapper
    // in our own child list instead, so check that the program really ran through it.
    assert.match(stdout, /Name:\s+cat/);
  });

  it('runs background work at a lower CPU and I/O priority, limits still applied', async () => {
    const { stdout } = await run('sh', ['-c', 'nice; ionice; ulimit -t'], {
      background: true,
      limits: { cpuSeconds: 30, addressSpaceBytes: 1024 * 1024 * 1024 },
    });
    const own = Number((await run('nice', [])).stdout);
    assert.deepEqual(stdout.split('\n'), [String(own + 10), 'best-effort: prio 7', '30']);
  });

  it('passes arguments as they are: nothing is interpreted by a shell', async () => {
    const { stdout } = await run('printf', ['%s|', 'a b', '$(id)', ';rm -rf /']);
    assert.equal(stdout, 'a b|$(id)|;rm -rf /|');
  });

  it('names the program, how it ended and its stderr when it fails', async () => {
    try {
      await run('sh', ['-c', 'echo boom >&2; exit 3']);
      assert.fail('should have failed');
    } catch (error) {
      const failure = commandError('sh', error);
      assert.equal(failure.message, 'sh exited with code 3: boom');
    }
  });

  it('reports a CPU limit hit as such', async () => {
    try {
      await run('sh', ['-c', 'while :; do :; done'], {
        limits: { cpuSeconds: 1, addressSpaceBytes: 256 * 1024 * 1024 },
        timeoutMs: 20_000,
      });
      assert.fail('should have been stopped');
    } catch (error) {
      assert.match(commandError('sh', error).message, /more CPU time than allowed/);
    }
  });
});
