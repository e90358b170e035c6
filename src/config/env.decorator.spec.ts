import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IsInt } from 'class-validator';
import { Env, envBindings, Group, valueAt } from './env.decorator';
import { ENV_BINDINGS, Settings } from './settings';

class Inner {
  @Env('INNER_B', { allowed: 'b', doc: 'second' })
  @IsInt()
  b = 2;

  @Env('INNER_A', { allowed: 'a', doc: 'first', aliases: ['OLD_A'] })
  a = 1;
}

class Outer {
  @Env('TOP', { allowed: 't', doc: 'top' })
  top = 0;

  @Group(() => Inner)
  inner = new Inner();

  /** Not a setting: no @Env, so not bound. */
  derived = 3;
}

describe('@Env and @Group: one declaration per setting', () => {
  it('lists bindings depth first, in declaration order, with dotted keys', () => {
    assert.deepEqual(envBindings(Outer), [
      { path: ['top'], key: 'top', names: ['TOP'], description: 'top', allowed: 't' },
      { path: ['inner', 'b'], key: 'inner.b', names: ['INNER_B'], description: 'second', allowed: 'b' },
      {
        path: ['inner', 'a'],
        key: 'inner.a',
        names: ['INNER_A', 'OLD_A'],
        description: 'first',
        allowed: 'a',
      },
    ]);
  });

  it('finds a default at a binding path', () => {
    assert.equal(valueAt(new Outer(), ['inner', 'a']), 1);
    assert.equal(valueAt(new Outer(), ['missing', 'a']), undefined);
  });

  it('binds every field of Settings, and each variable once', () => {
    const leaves = (node: object, prefix = ''): string[] =>
      Object.entries(node).flatMap(([field, value]) =>
        value !== null && typeof value === 'object'
          ? leaves(value, `${prefix}${field}.`)
          : [`${prefix}${field}`],
      );
    assert.deepEqual(ENV_BINDINGS.map((b) => b.key).sort(), leaves(new Settings()).sort());
    const names = ENV_BINDINGS.flatMap((b) => b.names);
    assert.equal(new Set(names).size, names.length);
  });

  it('groups the inspect limits the inspect stage takes as one object', () => {
    assert.deepEqual(
      ENV_BINDINGS.filter((b) => b.path[0] === 'inspect').map((b) => [b.key, b.names[0]]),
      [
        ['inspect.timeoutSeconds', 'INSPECT_TIMEOUT'],
        ['inspect.cpuSeconds', 'INSPECT_CPU_SECONDS'],
        ['inspect.addressSpaceBytes', 'INSPECT_MEMORY_BYTES'],
      ],
    );
  });
});
