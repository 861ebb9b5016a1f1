/**
 * The embedded validator without a cluster: defaulting, pruning, transition rules and ratcheting
 * on Troupe's own CRDs, and the boundaries of each schema keyword on a small CRD made for the
 * test. Agreement with the real API server is validator.conformance.test.ts's job.
 */
import { describe, expect, it } from 'vitest';
import { OperatorError } from '../errors.js';
import { CRDS_DIR } from '../testing/cluster.js';
import type { CustomResourceDefinition, JsonSchemaProps } from './crd.types.js';
import { describeInvalid, fieldErrorText, goDecimal, goFloat, goQuote, invalidStatus, type FieldError } from './field-error.js';
import { parseRequestUri } from './go-url.js';
import { CrdValidator } from './validator.js';

const troupe = CrdValidator.fromDirectory(CRDS_DIR);
const texts = (errors: readonly FieldError[]) => errors.map(fieldErrorText);
const NOT_CHECKED =
  '<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation';

function project(spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) {
  return {
    apiVersion: 'troupe.dev/v1alpha1',
    kind: 'Project',
    metadata: { name: 'storefront', namespace: 'acme', ...metadata },
    spec: { client: 'acme', brief: 'A shop.', budget: { maxCostUSD: 5 }, ...spec },
  };
}

/** A one-kind CRD whose spec has the given schema. */
function widgets(spec: JsonSchemaProps, version: Partial<CustomResourceDefinition['spec']['versions'][number]> = {}): CrdValidator {
  return CrdValidator.fromDefinitions([
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.example.com' },
      spec: {
        group: 'example.com',
        scope: 'Namespaced',
        names: { kind: 'Widget', plural: 'widgets' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: 'object', properties: { metadata: { type: 'object' }, spec } } },
            ...version,
          },
        ],
      },
    },
  ]);
}
const widget = (spec: unknown) => ({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w', namespace: 'ns' }, spec });

describe('CrdValidator on crds/', () => {
  it('serves the four kinds with their names, scope, subresources and printer columns', () => {
    expect(troupe.kinds().map((info) => `${info.kind}/${info.plural}/${info.shortNames.join(',')}`)).toEqual([
      'AgentPool/agentpools/ap',
      'ModelProvider/modelproviders/mp',
      'Project/projects/proj',
      'Workflow/workflows/wf',
    ]);
    const pool = troupe.kindOf('troupe.dev/v1alpha1', 'AgentPool');
    expect(pool).toMatchObject({
      group: 'troupe.dev',
      version: 'v1alpha1',
      namespaced: true,
      listKind: 'AgentPoolList',
      categories: ['troupe'],
    });
    expect(pool?.subresources).toEqual({
      status: true,
      scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
    });
    expect(pool?.printerColumns.map((column) => column.name)).toContain('Queue');
    expect(troupe.kindOf('troupe.dev/v1', 'Project')).toBeUndefined();
  });

  it('fills in the schema defaults, keeps values given, and defaults a null the schema does not allow', () => {
    const { object, errors } = troupe.validate(project({ priority: null, deliverables: ['code'] }));
    expect(errors).toEqual([]);
    expect((object as unknown as { spec: unknown }).spec).toEqual({
      client: 'acme',
      brief: 'A shop.',
      budget: { maxCostUSD: 5, onExceeded: 'Pause' },
      workflow: 'software-delivery',
      deliverables: ['code'],
      priority: 50,
      suspend: false,
    });
  });

  it('defaults inside list items', () => {
    const { object } = troupe.validate({
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'Workflow',
      metadata: { name: 'w', namespace: 'acme' },
      spec: { phases: [{ name: 'a', role: 'pm' }] },
    });
    expect((object as unknown as { spec: unknown }).spec).toEqual({ phases: [{ name: 'a', role: 'pm', fanOut: false, approval: false }] });
  });

  it('prunes fields the schema does not declare, in spec, list items and metadata, and names them', () => {
    const input = project(
      { colour: 'red', notify: { webhooks: [{ url: 'https://hooks.acme.example/t', retries: 3 }] } },
      { owner: 'me', labels: { team: 'web' } },
    );
    const { object, errors, unknownFields } = troupe.validate(input);
    expect(errors).toEqual([]);
    expect(unknownFields.sort()).toEqual(['metadata.owner', 'spec.colour', 'spec.notify.webhooks[0].retries']);
    expect(object.metadata).toEqual({ name: 'storefront', namespace: 'acme', labels: { team: 'web' } });
    expect(JSON.stringify(object)).not.toMatch(/colour|retries/);
    expect(input.spec).toHaveProperty('colour', 'red');
  });

  it('drops a null the schema does not allow and has no default for', () => {
    const pool = {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'AgentPool',
      metadata: { name: 'p', namespace: 'acme' },
      spec: { role: 'qa', model: { provider: 'sim', name: 'm', temperature: null } },
    };
    const { object, errors } = troupe.validate(pool);
    expect(errors).toEqual([]);
    expect((object as unknown as { spec: { model: unknown } }).spec.model).toEqual({ provider: 'sim', name: 'm' });
  });

  it('keeps spec.client immutable on update, and only on update', () => {
    const stored = troupe.validate(project({})).object;
    expect(troupe.validate(project({ client: 'globex' })).errors).toEqual([]);
    expect(texts(troupe.validate(project({ client: 'globex' }), stored).errors)).toEqual([
      'spec.client: Invalid value: "string": spec.client is immutable',
    ]);
    expect(troupe.validate(project({ brief: 'A bigger shop.', priority: 70 }), stored).errors).toEqual([]);
  });

  it('ratchets: an invalid value the update leaves alone is accepted, a changed one is refused', () => {
    // Stored before a schema tightened, or by another writer: priority above the maximum.
    const stored = project({ priority: 150 });
    expect(troupe.validate(project({ priority: 150, brief: 'Edited.' }), stored).errors).toEqual([]);
    expect(texts(troupe.validate(project({ priority: 151 }), stored).errors)).toEqual([
      'spec.priority: Invalid value: 151: spec.priority in body should be less than or equal to 100',
    ]);
    expect(texts(troupe.validate(project({ priority: 151 })).errors)).toEqual([
      'spec.priority: Invalid value: 151: spec.priority in body should be less than or equal to 100',
    ]);
  });

  it('does not run CEL rules once a required, enum, type or length error is found, and says so', () => {
    const pool = {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'AgentPool',
      metadata: { name: 'p', namespace: 'acme' },
      spec: { role: 'qa', systemPrompt: 'x', promptRef: { configMapKeyRef: { name: 'c', key: 'k' } } },
    };
    expect(texts(troupe.validate(pool).errors)).toEqual(['spec.model: Required value', NOT_CHECKED]);
  });

  it('reports CEL failures with the rule message, reason and fieldPath', () => {
    const provider = {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'ModelProvider',
      metadata: { name: 'p', namespace: 'acme' },
      spec: { type: 'anthropic', simulated: { seed: 1 } },
    };
    expect(texts(troupe.validate(provider).errors)).toEqual([
      'spec.apiKeySecretRef: Required value: spec.apiKeySecretRef is required when spec.type is openai or anthropic',
      'spec.simulated: Invalid value: "object": spec.simulated is only allowed when spec.type is simulated',
    ]);
  });

  it('judges URLs as Go does: an opaque http:foo has no host, a path is a URL without a scheme', () => {
    const provider = (baseURL: string) => ({
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'ModelProvider',
      metadata: { name: 'p', namespace: 'acme' },
      spec: { type: 'ollama', baseURL },
    });
    expect(troupe.validate(provider('http://ollama.ollama.svc:11434')).errors).toEqual([]);
    expect(troupe.validate(provider('https://[::1]:8443/v1')).errors).toEqual([]);
    for (const bad of ['http:ollama', '/v1/chat', 'ollama:11434', 'http://exa mple.com', 'https://a:b:c/']) {
      expect(texts(troupe.validate(provider(bad)).errors), bad).toEqual([
        'spec.baseURL: Invalid value: "string": spec.baseURL must be an absolute http or https URL',
      ]);
    }
  });

  it('checks metadata as every object: name, namespace, labels', () => {
    const bad = project({}, { name: 'Store_Front', namespace: '', labels: { 'team/web/x': 'ok', app: 'not ok' } });
    expect(texts(troupe.validate(bad).errors)).toEqual([
      `metadata.name: Invalid value: "Store_Front": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
      'metadata.namespace: Required value',
      `metadata.labels: Invalid value: "team/web/x": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
      `metadata.labels: Invalid value: "not ok": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
      NOT_CHECKED,
    ]);
    expect(texts(troupe.validate(project({}, { name: undefined })).errors)).toEqual([
      'metadata.name: Required value: name or generateName is required',
      NOT_CHECKED,
    ]);
  });

  it('checks the scale subresource replicas path besides the schema', () => {
    const pool = {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'AgentPool',
      metadata: { name: 'p', namespace: 'acme' },
      spec: { role: 'qa', replicas: -1, model: { provider: 's', name: 'm' } },
    };
    expect(texts(troupe.validate(pool).errors)).toEqual([
      'spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0',
      '.spec.replicas: Invalid value: -1: should be a non-negative integer',
    ]);
  });

  it('refuses duplicates in sets and in map lists by key', () => {
    const { errors } = troupe.validate(project({ deliverables: ['code', 'docs', 'code'], approvals: ['review', 'review'] }));
    expect(texts(errors)).toEqual(['spec.deliverables[2]: Duplicate value: "code"', 'spec.approvals[1]: Duplicate value: "review"']);
    const condition = { type: 'Ready', status: 'True', lastTransitionTime: '2025-01-01T00:00:00Z', reason: 'Ok', message: '' };
    const withStatus = { ...project({}), status: { conditions: [condition, { ...condition, status: 'False' }] } };
    expect(texts(troupe.validate(withStatus).errors)).toEqual([
      'status.conditions[1]: Duplicate value: map[string]interface {}{"type":"Ready"}',
    ]);
  });

  it('throws UNKNOWN_KIND for an object no CRD serves or that names no kind', () => {
    expect(() => troupe.validate({ apiVersion: 'troupe.dev/v1alpha1', kind: 'Invoice', metadata: { name: 'x' } })).toThrow(
      /no CRD serves kind Invoice at troupe.dev\/v1alpha1; the kinds served are AgentPool/,
    );
    expect(() => troupe.validate({ metadata: { name: 'x' } })).toThrow(expect.objectContaining({ code: 'UNKNOWN_KIND' }));
    expect(() => troupe.validate('kind: Project')).toThrow(/must be a JSON object, got string/);
  });
});

describe('CrdValidator keyword boundaries', () => {
  const check = (validator: CrdValidator, spec: unknown) => texts(validator.validate(widget(spec)).errors);

  it('minLength and maxLength count code points, and maxLength reads as Too long', () => {
    const strings = widgets({ type: 'object', properties: { s: { type: 'string', minLength: 2, maxLength: 3 } } });
    expect(check(strings, { s: 'ab' })).toEqual([]);
    expect(check(strings, { s: '🙂🙂🙂' })).toEqual([]);
    expect(check(strings, { s: 'a' })).toEqual(['spec.s: Invalid value: "a": spec.s in body should be at least 2 chars long']);
    expect(check(strings, { s: 'abcd' })).toEqual(['spec.s: Too long: may not be more than 3 bytes', NOT_CHECKED]);
  });

  it('minimum and maximum, inclusive and exclusive, printed as Go prints float64', () => {
    const numbers = widgets({
      type: 'object',
      properties: {
        n: { type: 'number', minimum: 0.5, exclusiveMinimum: true, maximum: 1000000 },
        i: { type: 'integer', maximum: 10, exclusiveMaximum: true },
      },
    });
    expect(check(numbers, { n: 1000000, i: 9 })).toEqual([]);
    expect(check(numbers, { n: 0.5, i: 10 })).toEqual([
      'spec.n: Invalid value: 0.5: spec.n in body should be greater than 0.5',
      'spec.i: Invalid value: 10: spec.i in body should be less than 10',
    ]);
    expect(check(numbers, { n: 1000000.5 })).toEqual([
      'spec.n: Invalid value: 1.0000005e+06: spec.n in body should be less than or equal to 1000000',
    ]);
  });

  it('type: integers fit number, whole numbers fit integer, the rest is refused naming the JSON type', () => {
    const typed = widgets({
      type: 'object',
      properties: {
        n: { type: 'number' },
        i: { type: 'integer' },
        b: { type: 'boolean' },
        l: { type: 'array', items: { type: 'string' } },
      },
    });
    expect(check(typed, { n: 3, i: 3, b: false, l: [] })).toEqual([]);
    expect(check(typed, { i: 2.5, b: 'yes', l: ['a', 1] })).toEqual([
      'spec.i: Invalid value: "number": spec.i in body must be of type integer: "number"',
      'spec.b: Invalid value: "string": spec.b in body must be of type boolean: "string"',
      'spec.l[1]: Invalid value: "integer": spec.l[1] in body must be of type string: "integer"',
      NOT_CHECKED,
    ]);
    expect(check(typed, 'x')).toEqual(['spec: Invalid value: "string": spec in body must be of type object: "string"', NOT_CHECKED]);
  });

  it('minItems, maxItems and maxProperties', () => {
    const lists = widgets({
      type: 'object',
      properties: {
        l: { type: 'array', minItems: 1, maxItems: 2, items: { type: 'integer' } },
        m: { type: 'object', maxProperties: 1, additionalProperties: { type: 'string' } },
      },
    });
    expect(check(lists, { l: [1, 2], m: { a: 'x' } })).toEqual([]);
    expect(check(lists, { l: [] })).toEqual(['spec.l: Invalid value: 0: spec.l in body should have at least 1 items']);
    expect(check(lists, { l: [1, 2, 3], m: { a: 'x', b: 'y' } })).toEqual([
      'spec.l: Too many: 3: must have at most 2 items',
      'spec.m: Too many: 2: must have at most 1 item',
      NOT_CHECKED,
    ]);
  });

  it('enum, required and nullable', () => {
    const enums = widgets({
      type: 'object',
      required: ['e'],
      properties: { e: { type: 'string', enum: ['a', 'b'] }, n: { type: 'string', nullable: true } },
    });
    expect(check(enums, { e: 'a', n: null })).toEqual([]);
    expect(enums.validate(widget({ e: 'a', n: null })).object).toMatchObject({ spec: { n: null } });
    expect(check(enums, { e: 'c' })).toEqual(['spec.e: Unsupported value: "c": supported values: "a", "b"', NOT_CHECKED]);
    expect(check(enums, {})).toEqual(['spec.e: Required value', NOT_CHECKED]);
  });

  it('pattern uses Go RE2 meaning: \\s is ASCII whitespace only', () => {
    const patterned = widgets({ type: 'object', properties: { p: { type: 'string', pattern: '^[^\\s]+$' } } });
    expect(check(patterned, { p: 'no\u00a0break' })).toEqual([]);
    expect(check(patterned, { p: 'two words' })).toEqual(['spec.p: Invalid value: "two words": spec.p in body should match \'^[^\\s]+$\'']);
  });

  it('format date-time as kube-openapi checks it', () => {
    const dated = widgets({ type: 'object', properties: { d: { type: 'string', format: 'date-time' } } });
    for (const good of ['2025-02-28T23:59:59Z', '2024-02-29t00:00:00.123+02:00']) expect(check(dated, { d: good }), good).toEqual([]);
    for (const bad of ['2025-02-29T00:00:00Z', '2025-01-01T24:00:00Z', '2025-01-01 10:00:00Z', '2025-01-01T10:00:00']) {
      expect(check(dated, { d: bad }), bad).toEqual([
        `spec.d: Invalid value: ${goQuote(bad)}: spec.d in body must be of type date-time: ${goQuote(bad)}`,
        NOT_CHECKED,
      ]);
    }
  });

  it('int-or-string with a quantity pattern, as pod resources use', () => {
    const quantity = {
      anyOf: [{ type: 'integer' }, { type: 'string' }],
      pattern: '^[0-9]+(m|Mi|Gi)?$',
      'x-kubernetes-int-or-string': true,
    };
    const resources = widgets({ type: 'object', additionalProperties: quantity });
    expect(check(resources, { cpu: '250m', memory: '1Gi', gpus: 1 })).toEqual([]);
    expect(check(resources, { memory: 'lots' })).toEqual([
      'spec.memory: Invalid value: "lots": spec.memory in body should match \'^[0-9]+(m|Mi|Gi)?$\'',
    ]);
    expect(check(resources, { cpu: 0.5 })).toEqual([
      'spec.cpu: Invalid value: "number": spec.cpu in body must be of type integer,string: "number"',
      '<nil>: Invalid value: "": "spec.cpu" must validate at least one schema (anyOf)',
      'spec.cpu: Invalid value: "number": spec.cpu in body must be of type integer: "number"',
      NOT_CHECKED,
    ]);
  });

  it('keeps unknown fields where x-kubernetes-preserve-unknown-fields says so', () => {
    const open = widgets({
      type: 'object',
      'x-kubernetes-preserve-unknown-fields': true,
      properties: { known: { type: 'string', default: 'd' } },
    });
    const { object, unknownFields } = open.validate(widget({ extra: { deep: 1 } }));
    expect(unknownFields).toEqual([]);
    expect(object).toMatchObject({ spec: { known: 'd', extra: { deep: 1 } } });
  });

  it('a rule without a message reports the rule; a runtime error names the rule', () => {
    const ruled = widgets({ type: 'object', properties: { a: { type: 'integer' } }, 'x-kubernetes-validations': [{ rule: 'self.a > 1' }] });
    expect(check(ruled, { a: 2 })).toEqual([]);
    expect(check(ruled, { a: 1 })).toEqual(['spec: Invalid value: "object": failed rule: self.a > 1']);
    expect(check(ruled, {})).toEqual(['spec: Invalid value: "object": no such key: a evaluating rule: self.a > 1']);
  });

  it('refuses at load a CRD it cannot enforce exactly, naming where', () => {
    expect(() => widgets({ type: 'object', oneOf: [{ required: ['a'] }] })).toThrow(
      /openAPIV3Schema.properties.spec: the embedded validator does not implement oneOf/,
    );
    expect(() => widgets({ type: 'string', format: 'email' })).toThrow(expect.objectContaining({ code: 'CRD_INVALID' }));
    expect(() => widgets({ anyOf: [{ type: 'integer' }, { type: 'boolean' }] })).toThrow(
      /implements anyOf only with x-kubernetes-int-or-string/,
    );
    expect(() => widgets({ type: 'object', 'x-kubernetes-validations': [{ rule: 'self.a >' }] })).toThrow(
      /x-kubernetes-validations\[0\]: rule self.a > does not compile/,
    );
    expect(() => CrdValidator.fromDefinitions([{ apiVersion: 'v1', kind: 'ConfigMap' } as unknown as CustomResourceDefinition])).toThrow(
      OperatorError,
    );
  });
});

describe('Go formatting and URL parsing', () => {
  it('prints float64 as %v, limits without exponent, and strings as %q', () => {
    expect([1e9, 0.25, 1e-5, 123456, 1234567.5].map(goFloat)).toEqual(['1e+09', '0.25', '1e-05', '123456', '1.2345675e+06']);
    expect([1e9, 0.25, 1e-7, 1e21, -2.5e-8].map(goDecimal)).toEqual([
      '1000000000',
      '0.25',
      '0.0000001',
      '1000000000000000000000',
      '-0.000000025',
    ]);
    expect(goQuote('say "hi"\n\ttab\u0007é\u00a0')).toBe('"say \\"hi\\"\\n\\ttab\\aé\\u00a0"');
  });

  it('parses request URIs as net/url does', () => {
    expect(parseRequestUri('https://user:pw@Example.com:8443/a?b#c')).toEqual({ ok: true, scheme: 'https', host: 'Example.com:8443' });
    expect(parseRequestUri('HTTP://[::1]/')).toEqual({ ok: true, scheme: 'http', host: '[::1]' });
    expect(parseRequestUri('mailto:ops@acme.example')).toEqual({ ok: true, scheme: 'mailto', host: '' });
    expect(parseRequestUri('/absolute-path')).toEqual({ ok: true, scheme: '', host: '' });
    expect(parseRequestUri('../relative-path')).toEqual({ ok: false, error: 'parse "../relative-path": invalid URI for request' });
    expect(parseRequestUri('https://a:b:c/')).toEqual({ ok: false, error: 'parse "https://a:b:c/": invalid port ":c" after host' });
    expect(parseRequestUri(':nothing')).toEqual({ ok: false, error: 'parse ":nothing": missing protocol scheme' });
    expect(parseRequestUri('https://bad%2host/')).toEqual({ ok: false, error: 'parse "https://bad%2host/": invalid URL escape "%2h"' });
  });
});

describe('describeInvalid and invalidStatus', () => {
  const kind = { group: 'troupe.dev', kind: 'Project' };
  const brief: FieldError = {
    type: 'Invalid',
    field: 'spec.brief',
    value: '',
    message: 'spec.brief in body should be at least 1 chars long',
  };
  const budget: FieldError = { type: 'Required', field: 'spec.budget', message: '' };

  it('words one error bare and several in brackets, each once', () => {
    expect(describeInvalid(kind, 'storefront', [brief])).toBe(
      'Project.troupe.dev "storefront" is invalid: spec.brief: Invalid value: "": spec.brief in body should be at least 1 chars long',
    );
    expect(describeInvalid(kind, 'storefront', [brief, budget, brief])).toBe(
      'Project.troupe.dev "storefront" is invalid: [spec.brief: Invalid value: "": spec.brief in body should be at least 1 chars long, spec.budget: Required value]',
    );
  });

  it('builds the 422 Status with one cause per error', () => {
    expect(invalidStatus(kind, 'storefront', [budget])).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Project.troupe.dev "storefront" is invalid: spec.budget: Required value',
      reason: 'Invalid',
      details: {
        name: 'storefront',
        group: 'troupe.dev',
        kind: 'Project',
        causes: [{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.budget' }],
      },
      code: 422,
    });
  });
});
