/**
 * Helpers over JSON values shared by the validation passes: type tests, deep equality, field
 * paths as the API server prints them, and matching a value with its counterpart in the old
 * object of an update (the correlation that validation ratcheting and transition rules rely on).
 */
import type { SchemaNode } from './structural-schema.js';

/** The same field in the object before an update; undefined on create or where no counterpart exists. */
export type Old = { readonly value: unknown } | undefined;

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Structural equality of JSON values. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, index) => deepEqual(item, b[index]));
  if (!isObject(a) || !isObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && deepEqual(a[key], b[key]));
}

/** `spec` + `budget` → `spec.budget`; the root has the empty path. */
export function joinPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** The old counterpart of a property: present only where the old object has that key. */
export function correlatedKey(old: Old, key: string): Old {
  return old !== undefined && isObject(old.value) && Object.hasOwn(old.value, key) ? { value: old.value[key] } : undefined;
}

/**
 * The old counterpart of a list item. Only items of `x-kubernetes-list-type: map` lists have one
 * (the old item with the same key fields); items of atomic lists and sets are never matched up.
 */
export function correlatedItem(list: SchemaNode, item: unknown, old: Old): Old {
  if (list.listType !== 'map' || old === undefined || !Array.isArray(old.value) || !isObject(item)) return undefined;
  const match = old.value.find((candidate) => isObject(candidate) && list.listMapKeys.every((key) => deepEqual(candidate[key], item[key])));
  return match === undefined ? undefined : { value: match };
}
