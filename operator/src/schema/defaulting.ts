/**
 * What the API server does to a custom resource while decoding it, before any validation: drop
 * the fields the schema does not declare (pruning), drop nulls the schema does not allow and has
 * no default for, then fill in schema defaults. All three change the value in place.
 */
import type { SchemaNode } from './structural-schema.js';
import { isObject, joinPath } from './values.js';

/** Fields every object keeps at its root whatever its schema says; metadata is checked on its own. */
const ROOT_FIELDS: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'metadata']);

/**
 * Removes undeclared fields from `value` and returns their paths (`spec.foo`, `spec.phases[0].bar`),
 * which the API server reports as unknown fields under strict field validation.
 */
export function pruneUnknownFields(value: unknown, node: SchemaNode, path = '', root = true): string[] {
  const pruned: string[] = [];
  if (Array.isArray(value)) {
    const items = node.items;
    if (items !== undefined) value.forEach((item, index) => pruned.push(...pruneUnknownFields(item, items, `${path}[${index}]`, false)));
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      if (root && ROOT_FIELDS.has(key) && (key !== 'metadata' || isObject(child))) continue;
      const property = node.properties.get(key) ?? node.additionalProperties;
      if (property !== undefined) pruned.push(...pruneUnknownFields(child, property, joinPath(path, key), false));
      else if (!node.preserveUnknownFields) {
        delete value[key];
        pruned.push(joinPath(path, key));
      }
    }
  }
  return pruned;
}

/** Removes null values where the schema allows no null and has no default to put in their place. */
export function pruneNulls(value: unknown, node: SchemaNode | undefined): void {
  if (node === undefined) return;
  if (Array.isArray(value)) {
    for (const item of value) pruneNulls(item, node.items);
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      const property = node.properties.get(key) ?? node.additionalProperties;
      if (child === null && property !== undefined && !property.nullable && !property.hasDefault) delete value[key];
      else pruneNulls(child, property);
    }
  }
}

/** Sets schema defaults on absent fields and on nulls the schema does not allow, then defaults inside them. */
export function applyDefaults(value: unknown, node: SchemaNode | undefined): void {
  if (node === undefined) return;
  if (Array.isArray(value)) {
    const items = node.items;
    value.forEach((item, index) => {
      if (item === null && items !== undefined && !items.nullable && items.hasDefault) value[index] = structuredClone(items.default);
      applyDefaults(value[index], items);
    });
  } else if (isObject(value)) {
    for (const [key, property] of node.properties) {
      if (property.hasDefault && (!Object.hasOwn(value, key) || (value[key] === null && !property.nullable)))
        value[key] = structuredClone(property.default);
    }
    for (const key of Object.keys(value)) {
      const property = node.properties.get(key);
      if (property !== undefined) applyDefaults(value[key], property);
      else if (node.additionalProperties !== undefined) {
        const additional = node.additionalProperties;
        if (value[key] === null && !additional.nullable && additional.hasDefault) value[key] = structuredClone(additional.default);
        applyDefaults(value[key], additional);
      }
    }
  }
}
