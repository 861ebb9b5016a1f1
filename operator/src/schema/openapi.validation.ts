/**
 * OpenAPI v3 value validation of a custom resource against its structural schema, with the
 * messages of the API server (kube-openapi's validator as apiextensions-apiserver maps its errors
 * to field errors), and validation ratcheting on update: errors inside a value the update left
 * unchanged are dropped, so an object stored under an older schema can still be edited.
 */
import { FieldErrorType, goDecimal, goQuote, isInt64, type FieldError } from './field-error.js';
import type { SchemaNode } from './structural-schema.js';
import { correlatedItem, correlatedKey, deepEqual, isObject, joinPath, type Old } from './values.js';

/** Field errors of `value` under `node`; `old` is the same field before an update, if it can be matched up. */
export function validateSchema(node: SchemaNode, value: unknown, old: Old, path = ''): FieldError[] {
  const errors = nodeErrors(node, value, old, path);
  return errors.length > 0 && old !== undefined && deepEqual(old.value, value) ? [] : errors;
}

function nodeErrors(node: SchemaNode, value: unknown, old: Old, path: string): FieldError[] {
  const errors: FieldError[] = [];
  const at = path === '' ? '' : `${path} `;
  if (value === null || value === undefined) {
    if (node.type !== undefined && !node.nullable) errors.push(typeError(path, node.type, 'null'));
    return errors;
  }
  const kind = jsonType(value);
  // An int-or-string node is typed [integer, string] for this check (its anyOf lists the same two).
  const types = node.intOrString ? ['integer', 'string'] : node.type === undefined ? [] : [node.type];
  if (types.length > 0 && !types.includes(kind) && !(kind === 'integer' && types.includes('number')))
    errors.push(typeError(path, types.join(','), kind));
  errors.push(...anyOfErrors(node, value, path));
  if (typeof value === 'string') errors.push(...stringErrors(node, value, path, at));
  if (typeof value === 'number') errors.push(...numberErrors(node, value, path, at));
  if (Array.isArray(value)) {
    if (node.minItems !== undefined && value.length < node.minItems) {
      errors.push({
        type: FieldErrorType.Invalid,
        field: path,
        value: value.length,
        message: `${at}in body should have at least ${node.minItems} items`,
      });
    }
    if (node.maxItems !== undefined && value.length > node.maxItems) errors.push(tooMany(path, value.length, node.maxItems));
    const items = node.items;
    if (items !== undefined)
      value.forEach((item, index) => errors.push(...validateSchema(items, item, correlatedItem(node, item, old), `${path}[${index}]`)));
  }
  if (node.enum !== undefined && !node.enum.some((allowed) => deepEqual(allowed, value))) {
    const supported = node.enum.map((allowed) => goQuote(typeof allowed === 'string' ? allowed : JSON.stringify(allowed)));
    errors.push({ type: FieldErrorType.Unsupported, field: path, value, message: `supported values: ${supported.join(', ')}` });
  }
  if (isObject(value)) errors.push(...objectErrors(node, value, old, path, at));
  return errors;
}

/** kube-openapi's "must be of type" error; the value shown is the JSON type the data has. */
function typeError(path: string, type: string, actual: string): FieldError {
  return {
    type: FieldErrorType.TypeInvalid,
    field: path,
    value: actual,
    message: `${path} in body must be of type ${type}: ${goQuote(actual)}`,
  };
}

function tooMany(path: string, actual: number, max: number): FieldError {
  return { type: FieldErrorType.TooMany, field: path, value: actual, message: `must have at most ${max} ${max === 1 ? 'item' : 'items'}` };
}

/**
 * anyOf (the validator allows it only under `x-kubernetes-int-or-string`): a value no branch takes
 * gets a composite error the API server files under no field ("<nil>"), then the errors of the
 * first branch (kube-openapi keeps the best-scoring branch; with type-only branches, the first).
 */
function anyOfErrors(node: SchemaNode, value: unknown, path: string): FieldError[] {
  if (node.anyOf.length === 0) return [];
  const failures = node.anyOf.map((branch) => validateSchema(branch, value, undefined, path));
  if (failures.some((errors) => errors.length === 0)) return [];
  const composite: FieldError = {
    type: FieldErrorType.Invalid,
    field: '<nil>',
    value: '',
    message: `${goQuote(path)} must validate at least one schema (anyOf)`,
  };
  return [composite, ...(failures[0] ?? [])];
}

function stringErrors(node: SchemaNode, value: string, path: string, at: string): FieldError[] {
  const errors: FieldError[] = [];
  // Lengths count Unicode code points, as Go counts runes.
  const length = [...value].length;
  if (node.maxLength !== undefined && length > node.maxLength) {
    errors.push({
      type: FieldErrorType.TooLong,
      field: path,
      value,
      message: `may not be more than ${node.maxLength} ${node.maxLength === 1 ? 'byte' : 'bytes'}`,
    });
  }
  if (node.minLength !== undefined && length < node.minLength) {
    errors.push({
      type: FieldErrorType.Invalid,
      field: path,
      value,
      message: `${at}in body should be at least ${node.minLength} chars long`,
    });
  }
  if (node.pattern !== undefined && !node.pattern.regexp.test(value)) {
    errors.push({ type: FieldErrorType.Invalid, field: path, value, message: `${at}in body should match '${node.pattern.source}'` });
  }
  if (node.format === 'date-time' && !isDateTime(value)) {
    errors.push({
      type: FieldErrorType.TypeInvalid,
      field: path,
      value,
      message: `${at}in body must be of type date-time: ${goQuote(value)}`,
    });
  }
  return errors;
}

function numberErrors(node: SchemaNode, value: number, path: string, at: string): FieldError[] {
  const errors: FieldError[] = [];
  const invalid = (message: string) =>
    errors.push({ type: FieldErrorType.Invalid, field: path, value, message: `${at}in body ${message}` });
  if (node.multipleOf !== undefined && !isInt64(value / node.multipleOf)) invalid(`should be a multiple of ${goDecimal(node.multipleOf)}`);
  if (node.maximum !== undefined) {
    if (node.exclusiveMaximum ? value >= node.maximum : value > node.maximum) {
      invalid(`should be less than ${node.exclusiveMaximum ? '' : 'or equal to '}${goDecimal(node.maximum)}`);
    }
  }
  if (node.minimum !== undefined) {
    if (node.exclusiveMinimum ? value <= node.minimum : value < node.minimum) {
      invalid(`should be greater than ${node.exclusiveMinimum ? '' : 'or equal to '}${goDecimal(node.minimum)}`);
    }
  }
  return errors;
}

function objectErrors(node: SchemaNode, value: Record<string, unknown>, old: Old, path: string, at: string): FieldError[] {
  const errors: FieldError[] = [];
  const count = Object.keys(value).length;
  if (node.maxProperties !== undefined && count > node.maxProperties) errors.push(tooMany(path, count, node.maxProperties));
  if (node.minProperties !== undefined && count < node.minProperties) {
    errors.push({
      type: FieldErrorType.Invalid,
      field: path,
      value: count,
      message: `${at}in body should have at least ${node.minProperties} properties`,
    });
  }
  for (const key of node.required) {
    if (!Object.hasOwn(value, key)) errors.push({ type: FieldErrorType.Required, field: joinPath(path, key), message: '' });
  }
  for (const [key, child] of Object.entries(value)) {
    const property = node.properties.get(key);
    // apiVersion and kind cannot ratchet: both objects of an update are read at the same version.
    const childOld = path === '' && (key === 'apiVersion' || key === 'kind') ? undefined : correlatedKey(old, key);
    if (property !== undefined) errors.push(...validateSchema(property, child, childOld, joinPath(path, key)));
    else if (node.additionalProperties !== undefined)
      errors.push(...validateSchema(node.additionalProperties, child, childOld, joinPath(path, key)));
  }
  return errors;
}

/** The JSON type of a decoded value, as kube-openapi names it; whole numbers are integers, as Go decodes them. */
function jsonType(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return isInt64(value) ? 'integer' : 'number';
  if (typeof value === 'object') return 'object';
  return typeof value;
}

/**
 * kube-openapi's date-time check (strfmt.IsDateTime): a full date, a 't', then hh:mm:ss with an
 * optional fraction and a zone (z or ±hh:mm), case-insensitive.
 */
function isDateTime(text: string): boolean {
  if (text.length < 4) return false;
  const [date = '', time] = text.toLowerCase().split('t');
  if (time === undefined || !isFullDate(date)) return false;
  const match = /^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$/u.exec(time);
  return match !== null && (match[1] ?? '') <= '23' && (match[2] ?? '') <= '59' && (match[3] ?? '') <= '59';
}

/** Go's time.Parse("2006-01-02", text): four-digit year, a real month and a day that month has. */
function isFullDate(text: string): boolean {
  const match = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/.exec(text);
  if (match === null) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  return days !== undefined && day >= 1 && day <= days;
}
