import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_READ, NBD_ERR, parseGoData, parseRequest, readProblem, REQUEST_MAGIC } from './nbd-protocol';

function goData(name: string, requests: number[]): Buffer {
  const nameBytes = Buffer.from(name);
  const out = Buffer.alloc(4 + nameBytes.length + 2 + 2 * requests.length);
  out.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(out, 4);
  out.writeUInt16BE(requests.length, 4 + nameBytes.length);
  requests.forEach((r, i) => out.writeUInt16BE(r, 6 + nameBytes.length + 2 * i));
  return out;
}

describe('NBD_OPT_GO data', () => {
  const cases: [string, Buffer, ReturnType<typeof parseGoData>][] = [
    ['the default export, no requests', goData('', []), { name: '', requests: [] }],
    ['a named export asking for block sizes', goData('disk', [3]), { name: 'disk', requests: [3] }],
    ['too short', Buffer.alloc(3), undefined],
    ['a name longer than the data', Buffer.from([0, 0, 0, 9, 0x61, 0, 0]), undefined],
    ['trailing bytes', Buffer.concat([goData('', [1]), Buffer.alloc(1)]), undefined],
  ];
  for (const [what, data, expected] of cases) {
    it(`parses ${what}`, () => assert.deepEqual(parseGoData(data), expected));
  }
});

describe('which READs the export serves', () => {
  const size = 1000;
  const cases: [number, number, number | undefined][] = [
    [0, 1000, undefined],
    [999, 1, undefined],
    [999, 2, NBD_ERR.EINVAL],
    [1000, 1, NBD_ERR.EINVAL],
    [0, 0, NBD_ERR.EINVAL],
    [0, MAX_READ + 1, NBD_ERR.EOVERFLOW],
  ];
  for (const [offset, length, expected] of cases) {
    it(`${length} bytes at ${offset} of ${size}: ${expected ?? 'served'}`, () =>
      assert.equal(readProblem(offset, length, size), expected));
  }
});

describe('transmission requests', () => {
  it('parses flags, type, cookie, offset and length', () => {
    const bytes = Buffer.alloc(28);
    bytes.writeUInt32BE(REQUEST_MAGIC, 0);
    bytes.writeUInt16BE(0, 4);
    bytes.writeUInt16BE(0, 6);
    bytes.write('cookie!!', 8);
    bytes.writeBigUInt64BE(4096n, 16);
    bytes.writeUInt32BE(512, 24);
    assert.deepEqual(parseRequest(bytes), {
      flags: 0,
      type: 0,
      handle: Buffer.from('cookie!!'),
      offset: 4096,
      length: 512,
    });
  });

  it('refuses a request without the magic', () => {
    assert.ok('error' in parseRequest(Buffer.alloc(28)));
  });
});
