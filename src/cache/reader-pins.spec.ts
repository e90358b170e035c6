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
      const pins = new ReaderPins<{ path: string }>((file) => told.push(file.path));
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

describe('ReaderPins.take: a pin with its own let-go (a job, a golden base verification after it)', () => {
  it('keeps the file until every taker let go, each counted once however often it calls', async () => {
    const told: string[] = [];
    const pins = new ReaderPins<{ path: string }>((file) => told.push(file.path));
    const file = { path: 'a' };
    const job = pins.take(file);
    const verification = pins.take(file);
    await job();
    await job();
    assert.equal(pins.count('a'), 1, 'the verification still reads it');
    assert.deepEqual(told, []);
    await verification();
    assert.equal(pins.count('a'), 0);
    assert.deepEqual(told, ['a']);
  });
});
