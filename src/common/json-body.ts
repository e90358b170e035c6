import { MalformedBodyError, messageOf } from './errors';

/**
 * Reads a request body sent as application/json. Keys that could change an object's prototype
 * when the body is merged or copied into another object (prototype pollution) are refused, as
 * Fastify's own parser refuses them: a `__proto__` key anywhere, and a `constructor` object that
 * holds a `prototype` key. Fastify answers both, and a syntax error, with one "Body is not valid
 * JSON" text; this says which it was, and where.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw new MalformedBodyError('the body is empty; send a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new MalformedBodyError(`the body is not valid JSON: ${messageOf(error)}`);
  }
  const refused = pollutingKey(value);
  if (refused) {
    throw new MalformedBodyError(
      `the body is valid JSON but has ${refused.what} at ${refused.path}: keys that could change ` +
        'object prototypes (prototype pollution) are refused; remove it',
      { path: refused.path },
    );
  }
  return value;
}

/** The first `__proto__` key, or `constructor` object with a `prototype` key, in a parsed value. */
export function pollutingKey(value: unknown): { what: string; path: string } | undefined {
  // An explicit stack: a 16 KiB body can nest thousands of levels deep.
  const stack: [unknown, string][] = [[value, '$']];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (Object.hasOwn(node, '__proto__')) return { what: 'a "__proto__" key', path };
    const ctor = (node as Record<string, unknown>).constructor;
    if (Object.hasOwn(node, 'constructor') && ctor !== null && typeof ctor === 'object') {
      if (Object.hasOwn(ctor, 'prototype')) {
        return { what: 'a "constructor" object with a "prototype" key', path: `${path}.constructor` };
      }
    }
    const entries = Array.isArray(node)
      ? node.map((item, i): [unknown, string] => [item, `${path}[${i}]`])
      : Object.entries(node).map(([key, item]): [unknown, string] => [item, `${path}.${key}`]);
    stack.push(...entries.reverse());
  }
  return undefined;
}
