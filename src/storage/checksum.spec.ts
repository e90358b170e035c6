import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRequestChecksum, parseSidecar } from './checksum';

const HEX = 'ab'.repeat(32);
const OTHER = '01'.repeat(32);
const UPPER = 'AB'.repeat(32);

describe('parseRequestChecksum: the checksum field of a request', () => {
  const accepted: [string, string][] = [
    ['sha256:<64 hex>', `sha256:${HEX}`],
    ['upper-case hex, returned lower-case', `sha256:${UPPER}`],
    ['surrounding whitespace', `  sha256:${HEX}\n`],
  ];
  for (const [what, value] of accepted) {
    it(`accepts ${what}`, () => assert.deepEqual(parseRequestChecksum(value), { sha256: HEX }));
  }

  const refused: [string, string][] = [
    ['a bare digest without the sha256: prefix', HEX],
    ['63 hex digits', `sha256:${HEX.slice(1)}`],
    ['65 hex digits', `sha256:${HEX}a`],
    ['another algorithm (md5:)', `md5:${'ab'.repeat(16)}`],
    ['an upper-case prefix (SHA256:)', `SHA256:${HEX}`],
    ['a non-hex digit', `sha256:${HEX.slice(1)}g`],
    ['the empty string', ''],
  ];
  for (const [what, value] of refused) {
    it(`refuses ${what} and quotes the input`, () => {
      const parsed = parseRequestChecksum(value);
      assert.ok('error' in parsed, `expected an error for ${JSON.stringify(value)}`);
      assert.match(parsed.error, /sha256:<64 hex digits>/);
      assert.ok(parsed.error.includes(JSON.stringify(value)), parsed.error);
    });
  }
});

describe('parseSidecar: a .sha256 file next to the image', () => {
  const found: [string, string, string][] = [
    ['a bare digest', HEX, 'disk.qcow2'],
    ['a bare digest with a trailing newline', `${HEX}\n`, 'disk.qcow2'],
    ['an upper-case bare digest, returned lower-case', UPPER, 'disk.qcow2'],
    ['sha256sum text mode (two spaces)', `${HEX}  disk.qcow2\n`, 'disk.qcow2'],
    ['sha256sum binary mode (space, star)', `${HEX} *disk.qcow2\n`, 'disk.qcow2'],
    ['sha256sum with a directory in the listed name', `${HEX}  images/disk.qcow2`, 'disk.qcow2'],
    ['an object key with directories', `${HEX}  disk.qcow2`, 'pool/2025/disk.qcow2'],
    ['BSD style', `SHA256 (disk.qcow2) = ${HEX}`, 'disk.qcow2'],
    ['BSD style without spaces, lower-case tag', `sha256(disk.qcow2)=${HEX}`, 'disk.qcow2'],
    ['CRLF line ends', `${OTHER}  a.img\r\n${HEX}  disk.qcow2\r\n`, 'disk.qcow2'],
    [
      'several sha256sum lines: the one naming the object',
      `${OTHER}  a.img\n${HEX}  disk.qcow2\n${OTHER}  b.img\n`,
      'disk.qcow2',
    ],
    [
      'several BSD lines: the one naming the object',
      `SHA256 (a.img) = ${OTHER}\nSHA256 (disk.qcow2) = ${HEX}`,
      'disk.qcow2',
    ],
    [
      'comments and blank lines around the digest',
      `# made by release.sh\n\n${HEX}  disk.qcow2\n\n`,
      'disk.qcow2',
    ],
  ];
  for (const [what, text, object] of found) {
    it(`reads ${what}`, () => assert.deepEqual(parseSidecar(text, object), { sha256: HEX }));
  }

  const refused: [string, string, string, RegExp][] = [
    ['an empty file', '', 'disk.qcow2', /sidecar is empty/],
    ['only comments and blank lines', '# nothing\n\n  \n', 'disk.qcow2', /sidecar is empty/],
    ['63 hex digits', HEX.slice(1), 'disk.qcow2', /is not a sha256 digest/],
    ['65 hex digits', `${HEX}0`, 'disk.qcow2', /is not a sha256 digest/],
    [
      'a sha256: prefixed digest (request syntax, not a sidecar format)',
      `sha256:${HEX}`,
      'disk.qcow2',
      /is not a sha256 digest/,
    ],
    ['an md5sum line', `${'ab'.repeat(16)}  disk.qcow2`, 'disk.qcow2', /is not a sha256 digest/],
    [
      'a BSD line of another algorithm',
      `SHA512 (disk.qcow2) = ${HEX}`,
      'disk.qcow2',
      /is not a sha256 digest/,
    ],
    ['an HTML error page', '<html><body>404</body></html>', 'disk.qcow2', /is not a sha256 digest/],
    ['a good line followed by garbage', `${HEX}  disk.qcow2\nnot a digest`, 'disk.qcow2', /"not a digest"/],
    ['a single line naming another file', `${HEX}  other.img`, 'disk.qcow2', /no line for disk\.qcow2/],
    [
      'several lines, none naming the object',
      `${HEX}  a.img\n${OTHER}  b.img`,
      'disk.qcow2',
      /no line for disk\.qcow2/,
    ],
    ['several bare digests (which one?)', `${HEX}\n${OTHER}`, 'disk.qcow2', /no line for disk\.qcow2/],
    [
      'two lines naming the object',
      `${HEX}  disk.qcow2\n${OTHER}  disk.qcow2`,
      'disk.qcow2',
      /names disk\.qcow2 more than once/,
    ],
  ];
  for (const [what, text, object, error] of refused) {
    it(`refuses ${what}`, () => {
      const parsed = parseSidecar(text, object);
      assert.ok('error' in parsed, `expected an error, got ${JSON.stringify(parsed)}`);
      assert.match(parsed.error, error);
    });
  }

  it('quotes at most 300 characters of a long sidecar in its error', () => {
    const text = `${`${OTHER}  a.img\n`.repeat(20)}not a digest`;
    const parsed = parseSidecar(text, 'disk.qcow2');
    assert.ok('error' in parsed);
    assert.ok(parsed.error.includes(`${JSON.stringify(text.slice(0, 300)).slice(0, -1)}..."`), parsed.error);
    assert.ok(parsed.error.length < 400, `${parsed.error.length} characters`);
  });
});
