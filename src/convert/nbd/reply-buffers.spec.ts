import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplyBuffers } from './reply-buffers';

describe('ReplyBuffers', () => {
  it('hands a slab out again only after it was released', () => {
    const buffers = new ReplyBuffers(1024, 4);
    const first = buffers.take(1000);
    const second = buffers.take(512);
    assert.equal(first.data.length, 1000);
    assert.equal(second.data.length, 512);
    assert.notEqual(first.data.buffer, second.data.buffer, 'two replies in flight never share memory');
    first.release();
    const third = buffers.take(100);
    assert.equal(third.data.buffer, first.data.buffer, 'a released slab is reused');
    assert.notEqual(third.data.buffer, second.data.buffer);
  });

  it('a release counts once, and no more than `keep` slabs wait', () => {
    const buffers = new ReplyBuffers(64, 2);
    const taken = [buffers.take(64), buffers.take(64), buffers.take(64)];
    taken[0].release();
    taken[0].release();
    assert.equal(buffers.idle, 1);
    taken[1].release();
    taken[2].release();
    assert.equal(buffers.idle, 2);
    const a = buffers.take(1);
    const b = buffers.take(1);
    assert.notEqual(a.data.buffer, b.data.buffer, 'a slab released twice is not handed out twice');
  });

  it('a read larger than a slab gets a buffer of its own, never kept', () => {
    const buffers = new ReplyBuffers(64, 2);
    const big = buffers.take(65);
    assert.equal(big.data.length, 65);
    big.release();
    assert.equal(buffers.idle, 0);
  });
});
