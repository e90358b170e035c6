// class-transformer's @Type reads design:type metadata; settings.js is also loaded outside Nest (the docs generator).
import 'reflect-metadata';
import { Type } from 'class-transformer';
import { ValidateNested } from 'class-validator';

/**
 * Where each setting is declared once: `@Env` binds a field to its environment variables and
 * documentation, next to its default and its class-validator rules; `@Group` nests a class of
 * settings that are used together. The loader (load-settings.ts) and the page generator
 * (scripts/gen-config-docs.mjs) both read the list envBindings() makes from these.
 */
export interface EnvOptions {
  /** The Meaning column of docs/configuration.md. */
  doc: string;
  /** What is allowed, for the docs and for the message that refuses a value. */
  allowed: string;
  /** Older names still read, after the first name; the first one set wins. */
  aliases?: string[];
}

/** How one setting is read from the environment; the first name found wins. */
export interface EnvBinding {
  /** Fields from Settings down to the setting, e.g. ['inspect', 'timeoutSeconds']. */
  path: string[];
  /** The path joined with dots: how maps and messages name a setting. */
  key: string;
  names: string[];
  description: string;
  allowed: string;
}

type Declared =
  | { field: string; names: string[]; description: string; allowed: string }
  | { field: string; group: () => new () => object };

// Keyed by class; decorators run in declaration order, so each list is in source order.
const DECLARED = new WeakMap<object, Declared[]>();

function declare(target: object, entry: Declared): void {
  const list = DECLARED.get(target.constructor) ?? [];
  list.push(entry);
  DECLARED.set(target.constructor, list);
}

export function Env(name: string, options: EnvOptions): PropertyDecorator {
  return (target, field) =>
    declare(target, {
      field: String(field),
      names: [name, ...(options.aliases ?? [])],
      description: options.doc,
      allowed: options.allowed,
    });
}

/** A nested group: validated as part of its parent, and built as its class when loaded. */
export function Group(type: () => new () => object): PropertyDecorator {
  const validate = ValidateNested();
  const build = Type(type);
  return (target, field) => {
    validate(target, field);
    build(target, field);
    declare(target, { field: String(field), group: type });
  };
}

/** Every @Env of a settings class and its groups, depth first in declaration order. */
export function envBindings(type: object, prefix: string[] = []): EnvBinding[] {
  return (DECLARED.get(type) ?? []).flatMap((entry) => {
    const path = [...prefix, entry.field];
    if ('group' in entry) return envBindings(entry.group(), path);
    const { names, description, allowed } = entry;
    return [{ path, key: path.join('.'), names, description, allowed }];
  });
}

/** The value at a binding's path (undefined when a group on the way is missing). */
export function valueAt(root: object, path: string[]): unknown {
  return path.reduce<unknown>((node, field) => (node as Record<string, unknown> | undefined)?.[field], root);
}
