import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReaderPins } from './reader-pins';

describe('ReaderPins: a file is let go when its last reader is', () => {
  // Steps: +x pins x, -x unpins x. `last` lists the files onLastReader was told about, in order.
  const cases: { what: string; steps: string[]; counts: Record<string, number>; last: string[] }[] = [
    { what: 'one reader', steps: ['+a', '-a'], counts: { a: 0 }, last: ['a'] },
    { what: 'two readers, one left', steps: ['+a', '+a', '-a'], counts: { a: 1 }, last: [] },
    { what: 'two readers, both gone', steps: ['+a', '+a', '-a', '-a'], counts: { a: 0 }, last: ['a'] },
    { what: 'files are counted apart', steps: ['+a', '+b', '-b'], counts: { a: 1, b: 0 }, last: ['b'] },
    { what: 'pinned again after the last let go', steps: ['+a', '-a', '+a'], counts: { a: 1 }, last: ['a'] },
    { what: 'an unpin without a pin counts as the last', steps: ['-a'], counts: { a: 0 }, last: ['a'] },
    { what: 'a file never pinned has no reader', steps: [], counts: { a: 0 }, last: [] },
  ];
  for (const { what, steps, counts, last } of cases) {
    it(what, () => {
      const told: string[] = [];
      const pins = new ReaderPins<{ path: string }>({ lastReader: (file) => told.push(file.path) });
      for (const step of steps) {
        const file = { path: step.slice(1) };
        if (step.startsWith('+')) pins.pin(file);
        else pins.unpin(file);
      }
      for (const [path, count] of Object.entries(counts)) assert.equal(pins.count(path), count, path);
      assert.deepEqual(told, last);
    });
  }
});

describe('ReaderPins.take and hold: pins with their own let-go (a job; a golden base verification after it)', () => {
  function watched() {
    const told: string[] = [];
    const pins = new ReaderPins<{ path: string }>({
      lastReader: (file) => told.push(`last reader ${file.path}`),
      unused: (file) => told.push(`unused ${file.path}`),
    });
    return { pins, told };
  }

  it('take: each taker is counted once however often it calls', async () => {
    const { pins, told } = watched();
    const file = { path: 'a' };
    const first = pins.take(file);
    const second = pins.take(file);
    await first();
    await first();
    assert.equal(pins.count('a'), 1, 'the second still reads it');
    assert.deepEqual(told, []);
    await second();
    assert.equal(pins.count('a'), 0);
    assert.deepEqual(told, ['last reader a', 'unused a']);
  });

  it("hold: keeps the file from eviction, not its last reader's work; unused once the hold goes too", async () => {
    const { pins, told } = watched();
    const file = { path: 'a' };
    const job = pins.take(file);
    const verification = pins.hold(file);
    await job();
    assert.equal(pins.count('a'), 1, 'held: not to be evicted or deleted');
    assert.deepEqual(told, ['last reader a'], 'the fsync and index row need not wait for the hold');
    await verification();
    await verification();
    assert.equal(pins.count('a'), 0);
    assert.deepEqual(told, ['last reader a', 'unused a']);
  });

  it('hold let go while a job still reads: unused only after that job', async () => {
    const { pins, told } = watched();
    const file = { path: 'a' };
    const verification = pins.hold(file);
    const job = pins.take(file);
    await verification();
    assert.deepEqual(told, []);
    assert.equal(pins.count('a'), 1);
    await job();
    assert.deepEqual(told, ['last reader a', 'unused a']);
  });
});
