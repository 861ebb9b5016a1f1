/**
 * A CRD's openAPIV3Schema compiled once into the tree the validator walks: patterns turned into
 * JavaScript regular expressions with Go's RE2 meaning, CEL rules parsed, and every keyword the
 * validator does not implement refused at load time, so a CRD it cannot enforce exactly is never
 * silently half-enforced.
 */
import { OperatorError, OperatorErrorCode } from '../errors.js';
import { compileRule, type CompiledRule } from './cel.validation.js';
import type { JsonSchemaProps, ValidationRule } from './crd.types.js';

export type SchemaType = 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';

/** A compiled schema node. Absent limits are undefined. */
export interface SchemaNode {
  /** Where the node is in its CRD file, for load errors. */
  readonly location: string;
  readonly type: SchemaType | undefined;
  readonly format: string | undefined;
  readonly nullable: boolean;
  readonly hasDefault: boolean;
  readonly default: unknown;
  readonly enum: readonly unknown[] | undefined;
  readonly pattern: { readonly source: string; readonly regexp: RegExp } | undefined;
  readonly minLength: number | undefined;
  readonly maxLength: number | undefined;
  readonly minimum: number | undefined;
  readonly maximum: number | undefined;
  readonly exclusiveMinimum: boolean;
  readonly exclusiveMaximum: boolean;
  readonly multipleOf: number | undefined;
  readonly minItems: number | undefined;
  readonly maxItems: number | undefined;
  readonly minProperties: number | undefined;
  readonly maxProperties: number | undefined;
  readonly required: readonly string[];
  readonly properties: ReadonlyMap<string, SchemaNode>;
  readonly additionalProperties: SchemaNode | undefined;
  readonly items: SchemaNode | undefined;
  readonly anyOf: readonly SchemaNode[];
  readonly intOrString: boolean;
  readonly preserveUnknownFields: boolean;
  readonly listType: 'atomic' | 'set' | 'map' | undefined;
  readonly listMapKeys: readonly string[];
  readonly rules: readonly CompiledRule[];
}

const TYPES: ReadonlySet<string> = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
/** Formats the API server checks that the validator checks too, and formats it ignores (numeric ones). */
const CHECKED_FORMATS: ReadonlySet<string> = new Set(['date-time']);
const UNCHECKED_FORMATS: ReadonlySet<string> = new Set(['int32', 'int64', 'float', 'double']);
/** Keywords that carry no validation. */
const DOCUMENTATION_KEYS: ReadonlySet<string> = new Set(['description', 'title', 'example', 'externalDocs', 'x-kubernetes-map-type']);
/** Keywords the validator implements. */
const VALIDATION_KEYS: ReadonlySet<string> = new Set([
  'type',
  'format',
  'nullable',
  'default',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'required',
  'properties',
  'additionalProperties',
  'items',
  'anyOf',
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-validations',
]);

/** Refuses a CRD the validator cannot enforce exactly as the API server does. */
export function crdError(location: string, problem: string, cause?: unknown): OperatorError {
  return new OperatorError(OperatorErrorCode.CrdInvalid, `${location}: ${problem}`, { cause });
}

/** Compiles an openAPIV3Schema; `location` names the file and path for errors. */
export function compileSchema(props: JsonSchemaProps, location: string): SchemaNode {
  for (const key of Object.keys(props)) {
    if (!VALIDATION_KEYS.has(key) && !DOCUMENTATION_KEYS.has(key))
      throw crdError(location, `the embedded validator does not implement ${key}`);
  }
  if (props.type !== undefined && !TYPES.has(props.type)) throw crdError(location, `unknown type ${JSON.stringify(props.type)}`);
  if (props.format !== undefined && !CHECKED_FORMATS.has(props.format) && !UNCHECKED_FORMATS.has(props.format)) {
    throw crdError(location, `the embedded validator does not implement format ${props.format}`);
  }
  // Only verified against the API server for the int-or-string pattern (anyOf integer, string).
  if (props.anyOf !== undefined && props['x-kubernetes-int-or-string'] !== true)
    throw crdError(location, 'the embedded validator implements anyOf only with x-kubernetes-int-or-string');
  if (typeof props.additionalProperties === 'boolean')
    throw crdError(location, 'additionalProperties must be a schema in a structural schema');
  const listType = props['x-kubernetes-list-type'];
  const listMapKeys = props['x-kubernetes-list-map-keys'] ?? [];
  if (listType === 'map' && listMapKeys.length === 0)
    throw crdError(location, 'x-kubernetes-list-type map needs x-kubernetes-list-map-keys');
  const child = (key: string) => `${location}.${key}`;
  const properties = new Map(
    Object.entries(props.properties ?? {}).map(([name, sub]) => [name, compileSchema(sub, child(`properties.${name}`))]),
  );
  return {
    location,
    type: props.type as SchemaType | undefined,
    format: props.format,
    nullable: props.nullable === true,
    hasDefault: props.default !== undefined,
    default: props.default,
    enum: props.enum,
    pattern: props.pattern === undefined ? undefined : { source: props.pattern, regexp: goRegExp(props.pattern, child('pattern')) },
    minLength: props.minLength,
    maxLength: props.maxLength,
    minimum: props.minimum,
    maximum: props.maximum,
    exclusiveMinimum: props.exclusiveMinimum === true,
    exclusiveMaximum: props.exclusiveMaximum === true,
    multipleOf: props.multipleOf,
    minItems: props.minItems,
    maxItems: props.maxItems,
    minProperties: props.minProperties,
    maxProperties: props.maxProperties,
    required: props.required ?? [],
    properties,
    additionalProperties:
      props.additionalProperties === undefined ? undefined : compileSchema(props.additionalProperties, child('additionalProperties')),
    items: props.items === undefined ? undefined : compileSchema(props.items, child('items')),
    anyOf: (props.anyOf ?? []).map((sub, index) => compileSchema(sub, child(`anyOf[${index}]`))),
    intOrString: props['x-kubernetes-int-or-string'] === true,
    preserveUnknownFields: props['x-kubernetes-preserve-unknown-fields'] === true,
    listType,
    listMapKeys,
    rules: (props['x-kubernetes-validations'] ?? []).map((rule, index) => compiledRule(rule, child(`x-kubernetes-validations[${index}]`))),
  };
}

function compiledRule(rule: ValidationRule, location: string): CompiledRule {
  const compiled = compileRule(rule);
  if ('problem' in compiled) throw crdError(location, compiled.problem, compiled.cause);
  return compiled;
}

/**
 * A JavaScript RegExp that matches what Go's RE2 matches for the patterns CRDs use. Go's `\s` is
 * ASCII whitespace only, where JavaScript's also takes Unicode spaces; the `u` flag makes `.` and
 * classes work on code points as RE2 works on runes.
 */
function goRegExp(pattern: string, location: string): RegExp {
  let translated = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === '\\') {
      const next = pattern[i + 1] ?? '';
      i++;
      if (next === 's') translated += inClass ? '\\t\\n\\f\\r ' : '[\\t\\n\\f\\r ]';
      else if (next === 'S' && !inClass) translated += '[^\\t\\n\\f\\r ]';
      // Without the m flag, JavaScript's $ and ^ match only at the ends of the input, as \z and \A do.
      else if (next === 'z' && !inClass) translated += '$';
      else if (next === 'A' && !inClass) translated += '^';
      else if (next === '' || 'SQEC'.includes(next))
        throw crdError(location, `the embedded validator does not translate \\${next} in ${pattern}`);
      else translated += `\\${next}`;
      continue;
    }
    if (char === '[' && !inClass) {
      inClass = true;
      translated += char;
      // A ']' right after '[' or '[^' is a literal in RE2.
      if (pattern[i + 1] === '^') translated += pattern[++i];
      if (pattern[i + 1] === ']') {
        translated += '\\]';
        i++;
      }
      continue;
    }
    if (char === ']' && inClass) inClass = false;
    else if (char === '(' && pattern.startsWith('(?P<', i)) {
      translated += '(?<';
      i += 3;
      continue;
    } else if (char === '(' && pattern[i + 1] === '?' && pattern[i + 2] !== ':' && pattern[i + 2] !== '<') {
      throw crdError(location, `the embedded validator does not translate the flag group in ${pattern}`);
    }
    translated += char;
  }
  try {
    return new RegExp(translated, 'u');
  } catch (error) {
    throw crdError(location, `pattern ${pattern} does not compile as a JavaScript regular expression`, error);
  }
}
