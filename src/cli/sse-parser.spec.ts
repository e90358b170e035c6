import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SseParser } from './sse-parser';

describe('SseParser', () => {
  const cases: { name: string; pieces: string[]; events: { event: string; data: string; id?: string }[] }[] =
    [
      {
        name: 'reads the daemon stream: id, event and JSON data, a heartbeat comment in between',
        pieces: ['id: 1\nevent: state\ndata: {"a":1}\n\n: heartbeat\n\nid: 2\nevent: end\ndata: {"a":2}\n\n'],
        events: [
          { event: 'state', data: '{"a":1}', id: '1' },
          { event: 'end', data: '{"a":2}', id: '2' },
        ],
      },
      {
        name: 'joins an event split anywhere across pieces, also inside a CRLF',
        pieces: ['id: 7\r', '\nevent: prog', 'ress\r\ndata: {"b"', ':true}\r', '\n\r', '\n'],
        events: [{ event: 'progress', data: '{"b":true}', id: '7' }],
      },
      {
        name: 'accepts bare CR line ends',
        pieces: ['event: stage\rdata: x\r\r'],
        events: [{ event: 'stage', data: 'x', id: undefined }],
      },
      {
        name: 'joins several data lines with a newline; "message" when no event is named',
        pieces: ['data: one\ndata:two\n\n'],
        events: [{ event: 'message', data: 'one\ntwo', id: undefined }],
      },
      {
        name: 'does not dispatch an event without data, and keeps the last id for later events',
        pieces: ['id: 3\nevent: state\n\ndata: later\n\n'],
        events: [{ event: 'message', data: 'later', id: '3' }],
      },
      {
        name: 'waits for the blank line before dispatching',
        pieces: ['event: state\ndata: {}\n'],
        events: [],
      },
    ];

  for (const c of cases) {
    it(c.name, () => {
      const parser = new SseParser();
      const events = c.pieces.flatMap((piece) => parser.push(piece));
      assert.deepEqual(events, c.events);
    });
  }

  it('remembers the retry advice', () => {
    const parser = new SseParser();
    parser.push('retry: 2500\n\n');
    assert.equal(parser.retryMs, 2500);
  });
});
