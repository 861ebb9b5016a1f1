/**
 * Field errors as the Kubernetes API server words them (apimachinery's `field.Error` and
 * `errors.NewInvalid`), including Go's way of printing the offending value, so a refusal by the
 * embedded validator reads exactly like one from a real cluster.
 */

/** The kinds of field error the API server reports (apimachinery's `field.ErrorType`). */
export const FieldErrorType = {
  Required: 'Required',
  Invalid: 'Invalid',
  /** A value of the wrong JSON type or format; reads as "Invalid value" but stops CEL rules from running. */
  TypeInvalid: 'TypeInvalid',
  Unsupported: 'Unsupported',
  TooLong: 'TooLong',
  TooMany: 'TooMany',
  Forbidden: 'Forbidden',
  Duplicate: 'Duplicate',
} as const;

export type FieldErrorType = (typeof FieldErrorType)[keyof typeof FieldErrorType];

/**
 * One reason an object is refused.
 *
 * @example
 * { type: 'Invalid', field: 'spec.brief', value: '', message: 'spec.brief in body should be at least 1 chars long' }
 */
export interface FieldError {
  type: FieldErrorType;
  /** The field's path as the API server prints it: `spec.budget.maxCostUSD`, `spec.phases[1].needs`. */
  field: string;
  /** The value the message is about; absent where the API server prints none (Required, TooLong, Forbidden). */
  value?: unknown;
  /** The detail after the type and value, e.g. `supported values: "Pause", "Fail"`; may be empty. */
  message: string;
}

/** The kind an error message names: `Project` of group `troupe.dev`. */
export interface QualifiedKind {
  group: string;
  kind: string;
}

/** metav1.Status for a refused object (HTTP 422, reason Invalid), as the API server answers it. */
export interface InvalidStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: 'Invalid';
  details: { name: string; group: string; kind: string; causes: { reason: string; message: string; field: string }[] };
  code: 422;
}

const TYPE_TEXT: Record<FieldErrorType, string> = {
  Required: 'Required value',
  Invalid: 'Invalid value',
  TypeInvalid: 'Invalid value',
  Unsupported: 'Unsupported value',
  TooLong: 'Too long',
  TooMany: 'Too many',
  Forbidden: 'Forbidden',
  Duplicate: 'Duplicate value',
};

/** The `reason` of a Status cause (apimachinery's CauseType values). */
const CAUSE_TYPE: Record<FieldErrorType, string> = {
  Required: 'FieldValueRequired',
  Invalid: 'FieldValueInvalid',
  TypeInvalid: 'FieldValueTypeInvalid',
  Unsupported: 'FieldValueNotSupported',
  TooLong: 'FieldValueTooLong',
  TooMany: 'FieldValueTooMany',
  Forbidden: 'FieldValueForbidden',
  Duplicate: 'FieldValueDuplicate',
};

/** Types whose text never shows the value. */
const VALUE_OMITTED: ReadonlySet<FieldErrorType> = new Set(['Required', 'Forbidden', 'TooLong']);

/** What follows the field in the API server's text: `Invalid value: "": spec.brief in body should be ...`. */
function fieldErrorBody(error: FieldError): string {
  let body = TYPE_TEXT[error.type];
  if (!VALUE_OMITTED.has(error.type)) body += `: ${goErrorValue(error.value)}`;
  return error.message === '' ? body : `${body}: ${error.message}`;
}

/** One error as the API server prints it: `spec.budget: Required value`. */
export function fieldErrorText(error: FieldError): string {
  return `${error.field}: ${fieldErrorBody(error)}`;
}

/**
 * The API server's message for a refused object, errors deduplicated as it does.
 *
 * @example
 * describeInvalid(kind, 'storefront', errors)
 * // 'Project.troupe.dev "storefront" is invalid: [spec.brief: Invalid value: "": spec.brief in body should be at least 1 chars long, spec.budget: Required value]'
 */
export function describeInvalid(kind: QualifiedKind, name: string, errors: readonly FieldError[]): string {
  const subject = `${kind.kind}${kind.group === '' ? '' : `.${kind.group}`} ${goQuote(name)} is invalid`;
  const texts = [...new Set(errors.map(fieldErrorText))];
  if (texts.length === 0) return subject;
  return `${subject}: ${texts.length === 1 ? texts[0] : `[${texts.join(', ')}]`}`;
}

/** The 422 Status body the API server answers a refused object with (`kubectl` reads its causes). */
export function invalidStatus(kind: QualifiedKind, name: string, errors: readonly FieldError[]): InvalidStatus {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: describeInvalid(kind, name, errors),
    reason: 'Invalid',
    details: {
      name,
      group: kind.group,
      kind: kind.kind,
      causes: errors.map((error) => ({ reason: CAUSE_TYPE[error.type], message: fieldErrorBody(error), field: error.field })),
    },
    code: 422,
  };
}

/** A value as field.Error prints it: `%v` for numbers and booleans, `%q` for strings, `%#v` otherwise, null for nil. */
function goErrorValue(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (typeof value === 'string') return goQuote(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return goNumberOrBool(value);
  return goSyntax(value);
}

/** Go's `%#v` of a JSON value decoded into `interface{}` (maps print with sorted keys, as fmt does). */
function goSyntax(value: unknown): string {
  if (value === undefined || value === null) return 'interface {}(nil)';
  if (typeof value === 'string') return goQuote(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return goNumberOrBool(value);
  if (Array.isArray(value)) return `[]interface {}{${value.map(goSyntax).join(', ')}}`;
  const entries = Object.keys(value as object)
    .sort()
    .map((key) => `${goQuote(key)}:${goSyntax((value as Record<string, unknown>)[key])}`);
  return `map[string]interface {}{${entries.join(', ')}}`;
}

function goNumberOrBool(value: number | bigint | boolean): string {
  if (typeof value === 'number') return isInt64(value) ? String(value) : goFloat(value);
  return String(value);
}

/** True for the numbers Go's JSON decoding (as the API server configures it) turns into int64. */
export function isInt64(value: number): boolean {
  return Number.isInteger(value) && Math.abs(value) < 2 ** 63;
}

/** Go's `%v` of a float64 (strconv's shortest 'g': an exponent from 1e+06 up and below 1e-04). */
export function goFloat(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  if (value === 0) return Object.is(value, -0) ? '-0' : '0';
  const [mantissa = '', exponentText = '0'] = value.toExponential().split('e');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 6) {
    return `${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return String(value);
}

/** A float64 in decimal without exponent (strconv's 'f' with the shortest precision), as schema limits are printed. */
export function goDecimal(value: number): string {
  if (!Number.isFinite(value)) return goFloat(value);
  const text = String(value);
  if (!text.includes('e')) return text;
  if (Number.isInteger(value)) return BigInt(value).toString();
  const [mantissa = '', exponent = '0'] = value.toExponential().split('e');
  const digits = mantissa.replace('-', '').replace('.', '');
  const zeros = '0'.repeat(-Number(exponent) - 1);
  return `${value < 0 ? '-' : ''}0.${zeros}${digits}`;
}

/** Go's `strconv.Quote`: double quotes, Go escapes, non-printable characters as \x, \u or \U escapes. */
export function goQuote(text: string): string {
  let quoted = '"';
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    const escape = GO_ESCAPES[char];
    if (escape !== undefined) quoted += escape;
    else if (code < 0x20 || code === 0x7f) quoted += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code < 0x80 || PRINTABLE.test(char)) quoted += char;
    else if (code <= 0xffff) quoted += `\\u${code.toString(16).padStart(4, '0')}`;
    else quoted += `\\U${code.toString(16).padStart(8, '0')}`;
  }
  return `${quoted}"`;
}

const GO_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
};
/** Go's unicode.IsPrint beyond ASCII: letters, marks, numbers, punctuation and symbols. */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
