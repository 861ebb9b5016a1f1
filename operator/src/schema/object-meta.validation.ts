/**
 * `metadata` of a custom resource as the API server treats it: fields ObjectMeta does not have
 * are dropped, fields of the wrong JSON type refused, and the generic rules of every object
 * applied (apimachinery's ValidateObjectMeta): a DNS-subdomain name, a DNS-label namespace,
 * qualified label, annotation and finalizer names, valid label values.
 */
import { FieldErrorType, type FieldError } from './field-error.js';
import { isObject } from './values.js';

type MetaFieldType = 'string' | 'integer' | 'string map' | 'string list' | 'list' | 'timestamp';

const OBJECT_META_FIELDS: Record<string, MetaFieldType> = {
  name: 'string',
  generateName: 'string',
  namespace: 'string',
  selfLink: 'string',
  uid: 'string',
  resourceVersion: 'string',
  generation: 'integer',
  creationTimestamp: 'timestamp',
  deletionTimestamp: 'timestamp',
  deletionGracePeriodSeconds: 'integer',
  labels: 'string map',
  annotations: 'string map',
  ownerReferences: 'list',
  finalizers: 'string list',
  managedFields: 'list',
};

const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_SUBDOMAIN = `${DNS1123_LABEL}(\\.${DNS1123_LABEL})*`;
const QUALIFIED_NAME = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const LABEL_VALUE = `(${QUALIFIED_NAME})?`;
const QUALIFIED_NAME_MESSAGE =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024;

/**
 * Drops undeclared metadata fields (returning their paths) and checks the declared ones' types;
 * a malformed `metadata` is refused as a whole.
 */
export function coerceObjectMeta(object: Record<string, unknown>): { unknownFields: string[]; errors: FieldError[] } {
  const metadata = object.metadata;
  if (metadata === undefined) return { unknownFields: [], errors: [] };
  if (!isObject(metadata))
    return {
      unknownFields: [],
      errors: [{ type: FieldErrorType.TypeInvalid, field: 'metadata', value: metadata, message: 'must be an object' }],
    };
  const unknownFields: string[] = [];
  const errors: FieldError[] = [];
  for (const [key, value] of Object.entries(metadata)) {
    const type = OBJECT_META_FIELDS[key];
    if (type === undefined) {
      delete metadata[key];
      unknownFields.push(`metadata.${key}`);
    } else if (value === null || value === undefined) delete metadata[key];
    else if (!hasMetaType(value, type))
      errors.push({ type: FieldErrorType.TypeInvalid, field: `metadata.${key}`, value, message: `must be ${META_TYPE_TEXT[type]}` });
  }
  return { unknownFields, errors };
}

const META_TYPE_TEXT: Record<MetaFieldType, string> = {
  string: 'a string',
  integer: 'an integer',
  'string map': 'a map of strings to strings',
  'string list': 'a list of strings',
  list: 'a list',
  timestamp: 'an RFC 3339 timestamp',
};

function hasMetaType(value: unknown, type: MetaFieldType): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return Number.isInteger(value);
    case 'string map':
      return isObject(value) && Object.values(value).every((entry) => typeof entry === 'string');
    case 'string list':
      return Array.isArray(value) && value.every((entry) => typeof entry === 'string');
    case 'list':
      return Array.isArray(value);
    case 'timestamp':
      return typeof value === 'string' && !Number.isNaN(Date.parse(value));
  }
}

/** ValidateObjectMeta for an object of a kind that is (or is not) namespaced, after coerceObjectMeta. */
export function validateObjectMeta(metadata: Record<string, unknown>, namespaced: boolean): FieldError[] {
  const errors: FieldError[] = [];
  const invalid = (field: string, value: unknown, messages: string[]) =>
    messages.forEach((message) => errors.push({ type: FieldErrorType.Invalid, field, value, message }));
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  const generateName = typeof metadata.generateName === 'string' ? metadata.generateName : '';
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : '';
  // generateName may end in '-' since the server appends to it; apimachinery masks the end the same odd way.
  const masked = generateName.length > 1 && generateName.endsWith('-') ? `${generateName.slice(0, -2)}a` : generateName;
  if (generateName !== '') invalid('metadata.generateName', generateName, dns1123Subdomain(masked));
  if (name === '') errors.push({ type: FieldErrorType.Required, field: 'metadata.name', message: 'name or generateName is required' });
  else invalid('metadata.name', name, dns1123Subdomain(name));
  if (namespaced) {
    if (namespace === '') errors.push({ type: FieldErrorType.Required, field: 'metadata.namespace', message: '' });
    else invalid('metadata.namespace', namespace, dns1123Label(namespace));
  } else if (namespace !== '')
    errors.push({ type: FieldErrorType.Forbidden, field: 'metadata.namespace', message: 'not allowed on this type' });
  if (typeof metadata.generation === 'number' && metadata.generation < 0)
    invalid('metadata.generation', metadata.generation, ['must be greater than or equal to 0']);
  for (const [key, value] of Object.entries((metadata.labels as Record<string, string> | undefined) ?? {})) {
    invalid('metadata.labels', key, qualifiedName(key));
    invalid('metadata.labels', value, labelValue(value));
  }
  const annotations = (metadata.annotations as Record<string, string> | undefined) ?? {};
  let annotationBytes = 0;
  for (const [key, value] of Object.entries(annotations)) {
    invalid('metadata.annotations', key, qualifiedName(key.toLowerCase()));
    annotationBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (annotationBytes > TOTAL_ANNOTATION_SIZE_LIMIT) {
    errors.push({
      type: FieldErrorType.TooLong,
      field: 'metadata.annotations',
      value: '',
      message: `may not be more than ${TOTAL_ANNOTATION_SIZE_LIMIT} bytes`,
    });
  }
  for (const finalizer of (metadata.finalizers as string[] | undefined) ?? [])
    invalid('metadata.finalizers', finalizer, qualifiedName(finalizer));
  return errors;
}

/** apimachinery's RegexError: the rule, examples, and the regular expression. */
function regexError(message: string, format: string, ...examples: string[]): string {
  return `${message} (e.g. ${examples.map((example) => `'${example}', `).join(' or ')}regex used for validation is '${format}')`;
}

function dns1123Subdomain(value: string): string[] {
  const messages: string[] = [];
  if (value.length > 253) messages.push('must be no more than 253 characters');
  if (!new RegExp(`^${DNS1123_SUBDOMAIN}$`).test(value)) {
    messages.push(
      regexError(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        DNS1123_SUBDOMAIN,
        'example.com',
      ),
    );
  }
  return messages;
}

function dns1123Label(value: string): string[] {
  const messages: string[] = [];
  if (value.length > 63) messages.push('must be no more than 63 characters');
  if (!new RegExp(`^${DNS1123_LABEL}$`).test(value)) {
    messages.push(
      regexError(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        DNS1123_LABEL,
        'my-name',
        '123-abc',
      ),
    );
  }
  return messages;
}

/** IsQualifiedName: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters. */
function qualifiedName(value: string): string[] {
  const parts = value.split('/');
  if (parts.length > 2) {
    return [
      `a qualified name ${regexError(QUALIFIED_NAME_MESSAGE, QUALIFIED_NAME, 'MyName', 'my.name', '123-abc')} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
    ];
  }
  const messages: string[] = [];
  const name = parts.length === 2 ? (parts[1] ?? '') : value;
  if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    if (prefix === '') messages.push('prefix part must be non-empty');
    else messages.push(...dns1123Subdomain(prefix).map((message) => `prefix part ${message}`));
  }
  if (name === '') messages.push('name part must be non-empty');
  else if (name.length > 63) messages.push('name part must be no more than 63 characters');
  if (!new RegExp(`^${QUALIFIED_NAME}$`).test(name))
    messages.push(`name part ${regexError(QUALIFIED_NAME_MESSAGE, QUALIFIED_NAME, 'MyName', 'my.name', '123-abc')}`);
  return messages;
}

function labelValue(value: string): string[] {
  const messages: string[] = [];
  if (value.length > 63) messages.push('must be no more than 63 characters');
  if (!new RegExp(`^${LABEL_VALUE}$`).test(value)) {
    messages.push(
      regexError(
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        LABEL_VALUE,
        'MyValue',
        'my_value',
        '12345',
      ),
    );
  }
  return messages;
}
