/**
 * The CEL rules of `x-kubernetes-validations`, run as the API server runs them: on every present
 * value of a schema node with rules, `self` typed by the schema (integers as int, numbers as
 * double), transition rules (those naming `oldSelf`) only on update where the old object has the
 * same field, and failures reported with the rule's message, reason and fieldPath. Expressions
 * are evaluated by @marcbachmann/cel-js with the Kubernetes URL library functions CRDs use.
 */
import { Environment, type ASTNode, type ParseResult } from '@marcbachmann/cel-js';
import type { ValidationRule } from './crd.types.js';
import { FieldErrorType, type FieldError } from './field-error.js';
import { parseRequestUri } from './go-url.js';
import type { SchemaNode } from './structural-schema.js';
import { correlatedItem, correlatedKey, deepEqual, isObject, joinPath, type Old } from './values.js';

/** A rule parsed once at load. */
export interface CompiledRule {
  readonly rule: string;
  readonly message: string;
  readonly reason: FieldErrorType;
  /** The rule's fieldPath without the leading dot (`promptRef`), or '' for the node itself. */
  readonly fieldPath: string;
  /** A transition rule: it reads oldSelf, so it runs on update only. */
  readonly usesOldSelf: boolean;
  readonly program: ParseResult;
}

/** A parsed URL, the value of Kubernetes' `url(string)`. */
class CelUrl {
  constructor(
    readonly scheme: string,
    readonly host: string,
  ) {}
}

const REASONS: Record<NonNullable<ValidationRule['reason']>, FieldErrorType> = {
  FieldValueInvalid: FieldErrorType.Invalid,
  FieldValueForbidden: FieldErrorType.Forbidden,
  FieldValueRequired: FieldErrorType.Required,
  FieldValueDuplicate: FieldErrorType.Duplicate,
};

/** `self` and `oldSelf` are typed by the schema at run time, so the checker sees them as dyn. */
const environment = new Environment()
  .registerVariable('self', 'dyn')
  .registerVariable('oldSelf', 'dyn')
  .registerType('URL', CelUrl)
  .registerFunction('isURL(string): bool', (text: string) => parseRequestUri(text).ok)
  .registerFunction('url(string): URL', (text: string) => {
    const parsed = parseRequestUri(text);
    if (!parsed.ok) throw new Error(`URL parse error during conversion from string: ${parsed.error}`);
    return new CelUrl(parsed.scheme, parsed.host);
  })
  .registerFunction('URL.getScheme(): string', (url: CelUrl) => url.scheme)
  .registerFunction('URL.getHost(): string', (url: CelUrl) => url.host);

/** Why a rule cannot be run as the API server runs it; the schema compiler adds where the rule is. */
export interface RuleProblem {
  problem: string;
  cause?: unknown;
}

/** Parses and type-checks a rule. */
export function compileRule(rule: ValidationRule): CompiledRule | RuleProblem {
  if (rule.messageExpression !== undefined) return { problem: 'the embedded validator does not implement messageExpression' };
  if (rule.optionalOldSelf !== undefined) return { problem: 'the embedded validator does not implement optionalOldSelf' };
  const fieldPath = rule.fieldPath ?? '';
  if (fieldPath !== '' && !/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(fieldPath)) {
    return { problem: `the embedded validator supports fieldPath only as .field.field, got ${fieldPath}` };
  }
  let program: ParseResult;
  try {
    program = environment.parse(rule.rule);
  } catch (error) {
    return { problem: `rule ${rule.rule} does not compile: ${(error as Error).message}`, cause: error };
  }
  const checked = program.check();
  if (!checked.valid || (checked.type !== 'bool' && checked.type !== 'dyn')) {
    return { problem: `rule ${rule.rule} does not type-check to bool: ${checked.error?.message ?? checked.type}` };
  }
  return {
    rule: rule.rule,
    // The API server's wording for a rule without a message.
    message: rule.message ?? `failed rule: ${rule.rule.trim()}`,
    reason: REASONS[rule.reason ?? 'FieldValueInvalid'],
    fieldPath: fieldPath.slice(1),
    usesOldSelf: mentions(program.ast, 'oldSelf'),
    program,
  };
}

/**
 * Runs every rule of the schema on `value`, with `old` the same field of the object before an
 * update (undefined on create, or where the old object cannot be matched up). Unchanged values
 * skip all but their transition rules (validation ratcheting).
 */
export function validateRules(node: SchemaNode, value: unknown, old: Old, path: string): FieldError[] {
  // Rules run on present values only; null and absent fields are for the enclosing rules to judge.
  if (value === null || value === undefined) return [];
  const errors: FieldError[] = [];
  const unchanged = old !== undefined && deepEqual(old.value, value);
  for (const compiled of node.rules) {
    if (compiled.usesOldSelf ? old === undefined || old.value === null : unchanged) continue;
    errors.push(...runRule(compiled, node, value, old, path));
  }
  if (Array.isArray(value) && node.items !== undefined) {
    const items = node.items;
    value.forEach((item, index) => errors.push(...validateRules(items, item, correlatedItem(node, item, old), `${path}[${index}]`)));
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      const property = node.properties.get(key);
      const childOld = correlatedKey(old, key);
      if (property !== undefined) errors.push(...validateRules(property, child, childOld, joinPath(path, key)));
      else if (node.additionalProperties !== undefined)
        errors.push(...validateRules(node.additionalProperties, child, childOld, `${path}[${key}]`));
    }
  }
  return errors;
}

function runRule(compiled: CompiledRule, node: SchemaNode, value: unknown, old: Old, path: string): FieldError[] {
  // The API server shows the node's type where the value would be: `spec: Invalid value: "object": ...`.
  const shownValue = node.type ?? '';
  let result: unknown;
  try {
    result = compiled.program({ self: toCel(node, value), ...(old === undefined ? {} : { oldSelf: toCel(node, old.value) }) });
  } catch (error) {
    const summary = (error as { summary?: string }).summary ?? (error as Error).message;
    // cel-go's runtime errors start lowercase ("no such key: needs").
    const problem = summary.charAt(0).toLowerCase() + summary.slice(1);
    return [{ type: FieldErrorType.Invalid, field: path, value: shownValue, message: `${problem} evaluating rule: ${compiled.rule}` }];
  }
  if (result === true) return [];
  const field = compiled.fieldPath === '' ? path : joinPath(path, compiled.fieldPath);
  const { reason, message } = compiled;
  if (reason === FieldErrorType.Required || reason === FieldErrorType.Forbidden) return [{ type: reason, field, message }];
  if (reason === FieldErrorType.Duplicate) return [{ type: reason, field, value: shownValue, message: '' }];
  return [{ type: FieldErrorType.Invalid, field, value: shownValue, message }];
}

/** A JSON value as CEL sees it under its schema: integers as int (bigint), numbers as double. */
function toCel(node: SchemaNode | undefined, value: unknown): unknown {
  if (typeof value === 'number') return node?.type !== 'number' && Number.isInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map((item) => toCel(node?.items, item));
  if (isObject(value)) {
    const converted: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const [key, child] of Object.entries(value))
      converted[key] = toCel(node?.properties.get(key) ?? node?.additionalProperties, child);
    return converted;
  }
  return value;
}

function mentions(ast: ASTNode, identifier: string): boolean {
  const visit = (part: unknown): boolean => {
    if (Array.isArray(part)) return part.some(visit);
    if (typeof part !== 'object' || part === null || !('op' in part)) return false;
    const node = part as ASTNode;
    return (node.op === 'id' && node.args === identifier) || visit(node.args);
  };
  return visit(ast);
}
