import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { commandError, run } from './exec';

/** The threads of this process that have `pid` as a child (the kernel records which thread forked it). */
function parentThreadsOf(pid: number): number[] {
  return readdirSync('/proc/self/task')
    .filter((tid) => readFileSync(`/proc/self/task/${tid}/children`, 'utf8').split(' ').includes(String(pid)))
    .map(Number);
}

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
    assert.deepEqual(stdout.split('\n'), [String(Math.min(own + 19, 19)), 'best-effort: prio 7', '30']);
  });

  it("runs a job's data work the given amount below the daemon's CPU priority, limits still applied", async () => {
    const { stdout } = await run('sh', ['-c', 'nice; ionice; ulimit -t'], {
      nice: 7,
      limits: { cpuSeconds: 30 },
    });
    const own = Number((await run('nice', [])).stdout);
    const ownIo = (await run('ionice', [])).stdout;
    assert.deepEqual(stdout.split('\n'), [String(Math.min(own + 7, 19)), ownIo, '30']);
    assert.equal(
      (await run('nice', [], { nice: 0 })).stdout,
      String(own),
      'nice 0 leaves the priority alone',
    );
  });

  it('starts programs from a thread of its own, never from the event loop', async () => {
    const abort = new AbortController();
    const sleeping = run('sleep', ['30'], { signal: abort.signal }).catch((error: Error) => error);
    const pid = await (async () => {
      for (let i = 0; i < 200; i++) {
        const mine = readdirSync('/proc/self/task').flatMap((tid) =>
          readFileSync(`/proc/self/task/${tid}/children`, 'utf8')
            .trim()
            .split(' ')
            .filter(Boolean)
            .map(Number),
        );
        const found = mine.find((child) =>
          readFileSync(`/proc/${child}/cmdline`, 'utf8').startsWith('sleep\0'),
        );
        if (found) return found;
        await sleep(25);
      }
      throw new Error('sleep did not start');
    })();
    const parents = parentThreadsOf(pid);
    abort.abort();
    assert.match(commandError('sleep', await sleeping).message, /cancelled/);
    assert.equal(parents.length, 1);
    assert.notEqual(parents[0], process.pid, 'the main thread (tid = pid) did not fork it');
  });

  it('keeps the process alive while a program runs, and lets it exit when none does', () => {
    // A process whose only work is a program it awaits: it must wait for it, then exit by itself.
    const script = `require(${JSON.stringify(require.resolve('./exec'))}).run('sh', ['-c', 'sleep 0.3; echo slept']).then((r) => console.log(r.stdout))`;
    const output = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(output.trim(), 'slept');
  });

  it("hands stdout over chunk by chunk with backpressure, and a consumer's failure stops the program", async () => {
    const chunks: Buffer[] = [];
    await run('sh', ['-c', 'head -c 3000000 /dev/zero | tr "\\0" a'], {
      onStdout: async (chunk) => {
        await sleep(1); // a slow consumer: the program must wait, nothing may be lost
        chunks.push(Buffer.from(chunk));
      },
    });
    const all = Buffer.concat(chunks);
    assert.equal(all.length, 3_000_000);
    assert.ok(all.every((byte) => byte === 0x61));

    const refused = new Error('disk full');
    const failed = await run('sh', ['-c', 'while :; do head -c 65536 /dev/zero; done'], {
      onStdout: async () => {
        throw refused;
      },
      timeoutMs: 20_000,
    }).catch((error: Error) => error);
    assert.equal(failed, refused, "the consumer's error is the run's error (not a timeout)");
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
