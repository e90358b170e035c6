import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coerce, describeType, type GivenValue, readVariable } from './env-binding';

describe('readVariable: which variable gives a setting its value', () => {
  const names = ['DB_PATH', 'DATABASE_PATH'];
  const cases: [string, Record<string, string>, Record<string, string>, GivenValue | undefined][] = [
    ['nothing set: the default applies', {}, {}, undefined],
    ['the first name, from the environment', { DB_PATH: '/a' }, {}, { name: 'DB_PATH', value: '/a' }],
    ['an alias when only it is set', { DATABASE_PATH: '/b' }, {}, { name: 'DATABASE_PATH', value: '/b' }],
    [
      'the first name over an alias',
      { DB_PATH: '/a', DATABASE_PATH: '/b' },
      {},
      { name: 'DB_PATH', value: '/a' },
    ],
    [
      'an alias over an empty first name',
      { DB_PATH: '', DATABASE_PATH: '/b' },
      {},
      { name: 'DATABASE_PATH', value: '/b' },
    ],
    ['nothing, when every name is empty', { DB_PATH: '', DATABASE_PATH: '' }, {}, undefined],
    [
      'the file when the environment has none',
      {},
      { DATABASE_PATH: '/f' },
      { name: 'DATABASE_PATH', value: '/f' },
    ],
    ['the environment over the file', { DB_PATH: '/e' }, { DB_PATH: '/f' }, { name: 'DB_PATH', value: '/e' }],
    [
      'the environment over the file whichever alias each uses',
      { DATABASE_PATH: '/e' },
      { DB_PATH: '/f' },
      { name: 'DATABASE_PATH', value: '/e' },
    ],
    [
      'the file when the environment is empty',
      { DB_PATH: '' },
      { DB_PATH: '/f' },
      { name: 'DB_PATH', value: '/f' },
    ],
    ['nothing from a variable of another setting', { DB_PATHS: '/x' }, {}, undefined],
  ];
  for (const [what, env, file, expected] of cases) {
    it(`takes ${what}`, () => assert.deepEqual(readVariable(names, env, file), expected));
  }
});

describe('coerce: the text as the type of the default', () => {
  const cases: [string, unknown, string, unknown][] = [
    ['an integer', 8080, '9000', 9000],
    ['an integer with spaces around it', 8080, ' 9000 ', 9000],
    ['a size suffix', 0, '50G', 50 * 1024 ** 3],
    ['no integer from trailing text', 8080, '8080abc', undefined],
    ['no integer from a fraction', 8080, '1.5', undefined],
    ['"yes" as true', false, 'yes', true],
    ['"No" as false', true, 'No', false],
    ['" 1 " as true', false, ' 1 ', true],
    ['no boolean from "maybe"', false, 'maybe', undefined],
    ['text unchanged for a text default', 'json', ' text ', ' text '],
    ['text unchanged for a setting without default', undefined, '42', '42'],
  ];
  for (const [what, defaultValue, text, expected] of cases) {
    it(`reads ${what}`, () => assert.equal(coerce(defaultValue, text), expected));
  }

  const types: [unknown, string][] = [
    [1, 'an integer'],
    [true, 'true or false'],
    ['x', 'valid'],
    [undefined, 'valid'],
  ];
  for (const [defaultValue, expected] of types) {
    it(`names the type of ${JSON.stringify(defaultValue)} as ${expected}`, () =>
      assert.equal(describeType(defaultValue), expected));
  }
});
