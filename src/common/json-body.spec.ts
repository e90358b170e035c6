import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MalformedBodyError } from './errors';
import { parseJsonBody } from './json-body';

describe('parseJsonBody', () => {
  const accepted: [string, string, unknown][] = [
    ['an object', '{"a":1,"b":[true,null]}', { a: 1, b: [true, null] }],
    ['a "constructor" key holding a string', '{"constructor":"x"}', { constructor: 'x' }],
    [
      'a "constructor" object without "prototype"',
      '{"constructor":{"name":"x"}}',
      { constructor: { name: 'x' } },
    ],
    ['"__proto__" as a value, not a key', '{"a":"__proto__"}', { a: '__proto__' }],
    ['a "prototype" key elsewhere', '{"prototype":{}}', { prototype: {} }],
  ];
  for (const [what, text, expected] of accepted) {
    it(`accepts ${what}`, () => assert.deepEqual(parseJsonBody(text), expected));
  }

  const refused: [string, string, RegExp][] = [
    ['an empty body', '', /^the body is empty; send a JSON object$/],
    ['a syntax error, quoting JSON.parse', '{"image_url": ', /^the body is not valid JSON: .*JSON/],
    [
      'a top-level "__proto__" key',
      '{"__proto__":{"x":1}}',
      /has a "__proto__" key at \$: .*prototype pollution/,
    ],
    ['a nested "__proto__" key', '{"a":{"b":[{"__proto__":{}}]}}', /has a "__proto__" key at \$\.a\.b\[0\]:/],
    [
      'a "constructor" object with "prototype"',
      '{"x":{"constructor":{"prototype":{"polluted":true}}}}',
      /has a "constructor" object with a "prototype" key at \$\.x\.constructor:/,
    ],
  ];
  for (const [what, text, message] of refused) {
    it(`refuses ${what} with a message saying so`, () => {
      assert.throws(
        () => parseJsonBody(text),
        (error: unknown) => error instanceof MalformedBodyError && message.test(error.message),
      );
    });
  }
});
