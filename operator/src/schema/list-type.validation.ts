/**
 * The invariants of `x-kubernetes-list-type`: a `set` holds no value twice, and a `map` list holds
 * no two items with the same key fields. The API server checks them on every write, apart from
 * the OpenAPI validation and never ratcheted.
 */
import { FieldErrorType, type FieldError } from './field-error.js';
import type { SchemaNode } from './structural-schema.js';
import { deepEqual, isObject, joinPath } from './values.js';

/** Duplicate errors for every set and map list in `value`, at any depth. */
export function validateListTypes(node: SchemaNode | undefined, value: unknown, path = ''): FieldError[] {
  if (node === undefined) return [];
  const errors: FieldError[] = [];
  if (Array.isArray(value)) {
    if (node.listType === 'set' || node.listType === 'map') {
      // A map list's items are identified by their key fields, shown as Go prints a map.
      const identity = (item: unknown): unknown =>
        node.listType === 'map' && isObject(item)
          ? Object.fromEntries(node.listMapKeys.filter((key) => Object.hasOwn(item, key)).map((key) => [key, item[key]]))
          : item;
      const seen: unknown[] = [];
      value.forEach((item, index) => {
        const id = identity(item);
        if (seen.some((earlier) => deepEqual(earlier, id)))
          errors.push({ type: FieldErrorType.Duplicate, field: `${path}[${index}]`, value: id, message: '' });
        else seen.push(id);
      });
    }
    value.forEach((item, index) => errors.push(...validateListTypes(node.items, item, `${path}[${index}]`)));
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value))
      errors.push(...validateListTypes(node.properties.get(key) ?? node.additionalProperties, child, joinPath(path, key)));
  }
  return errors;
}
