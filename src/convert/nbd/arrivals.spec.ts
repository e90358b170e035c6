import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Arrivals } from './arrivals';

/** Whether a promise has settled after pending callbacks ran: 'resolved', 'rejected' or 'pending'. */
async function state(promise: Promise<unknown>): Promise<string> {
  let seen = 'pending';
  promise.then(
    () => (seen = 'resolved'),
    () => (seen = 'rejected'),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return seen;
}

describe('Arrivals: how much of a growing file readers may read', () => {
  it('lets a read of bytes already there through at once', async () => {
    const arrivals = new Arrivals(100);
    arrivals.advance(50);
    assert.equal(await state(arrivals.waitFor(50)), 'resolved');
  });

  it('holds a read beyond what arrived until those bytes are there, and wakes readers in order of their end', async () => {
    const arrivals = new Arrivals(100);
    const far = arrivals.waitFor(90);
    const near = arrivals.waitFor(20);
    arrivals.advance(19);
    assert.equal(await state(near), 'pending');
    arrivals.advance(20);
    assert.equal(await state(near), 'resolved');
    assert.equal(await state(far), 'pending');
    assert.equal(arrivals.waiting, 1);
    arrivals.finish();
    assert.equal(await state(far), 'resolved');
    assert.equal(arrivals.bytes, 100);
  });

  it('never moves back, nor past the size', () => {
    const arrivals = new Arrivals(100);
    arrivals.advance(60);
    arrivals.advance(30);
    assert.equal(arrivals.bytes, 60);
    arrivals.advance(500);
    assert.equal(arrivals.bytes, 100);
  });

  it('fails waiting and later readers beyond what arrived when the download fails, and still serves what is there', async () => {
    const arrivals = new Arrivals(100);
    arrivals.advance(40);
    const waiting = arrivals.waitFor(80);
    arrivals.fail(new Error('source died'));
    await assert.rejects(waiting, /source died/);
    await assert.rejects(arrivals.waitFor(41), /source died/);
    assert.equal(await state(arrivals.waitFor(40)), 'resolved');
    arrivals.advance(90);
    assert.equal(arrivals.bytes, 40, 'a failed file does not grow');
  });

  it('refuses a wait beyond the file', async () => {
    await assert.rejects(new Arrivals(10).waitFor(11), RangeError);
  });
});
