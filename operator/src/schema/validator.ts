/**
 * The embedded mode's stand-in for the API server's handling of Troupe's custom resources: the
 * CRDs of crds/ are loaded once, and every object written is pruned, defaulted and validated as
 * kube-apiserver does it (OpenAPI schema, metadata rules, list types, scale paths, CEL rules),
 * so the embedded server and the `troupe` CLI refuse the same input with the same words.
 *
 * @example
 * const validator = CrdValidator.fromDirectory('crds/');
 * const { object, errors } = validator.validate(manifest);
 * if (errors.length > 0) throw new Error(describeInvalid(validator.kindOf(object.apiVersion!, object.kind!)!, object.metadata.name, errors));
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { OperatorError, OperatorErrorCode } from '../errors.js';
import type { KubeObject } from '../kube/types.js';
import { validateRules } from './cel.validation.js';
import type { CustomResourceDefinition, KindInfo, ScaleSubresource } from './crd.types.js';
import { applyDefaults, pruneNulls, pruneUnknownFields } from './defaulting.js';
import { FieldErrorType, goFloat, isInt64, type FieldError } from './field-error.js';
import { validateListTypes } from './list-type.validation.js';
import { coerceObjectMeta, validateObjectMeta } from './object-meta.validation.js';
import { validateSchema } from './openapi.validation.js';
import { compileSchema, crdError, type SchemaNode } from './structural-schema.js';
import { isObject, type Old } from './values.js';

/** The outcome of validating one object. */
export interface ValidationResult {
  /** The object as the API server would store it: unknown fields pruned, defaults filled in. */
  object: KubeObject;
  /** Why the API server would refuse it; empty when it would accept it. */
  errors: FieldError[];
  /**
   * Paths of the fields pruning dropped (`spec.foo`, `metadata.bar`): a warning by default, an error
   * under kubectl's `--validate=strict` (`unknown field "spec.foo"`).
   */
  unknownFields: string[];
}

interface ServedKind {
  info: KindInfo;
  schema: SchemaNode;
}

/** Errors that leave the CEL rules unchecked, as the API server decides (hasBlockingErr). */
const BLOCKING: ReadonlySet<FieldErrorType> = new Set([
  FieldErrorType.Unsupported,
  FieldErrorType.Required,
  FieldErrorType.TooLong,
  FieldErrorType.TooMany,
  FieldErrorType.TypeInvalid,
]);

/** Validates custom resources against the CRDs they were loaded from; immutable once built. */
export class CrdValidator {
  readonly #kinds: ReadonlyMap<string, ServedKind>;

  private constructor(kinds: ReadonlyMap<string, ServedKind>) {
    this.#kinds = kinds;
  }

  /** Loads every CustomResourceDefinition in the `*.yaml` files of `crdsDir` (not its subfolders). */
  static fromDirectory(crdsDir: string): CrdValidator {
    const files = readdirSync(crdsDir)
      .filter((file) => file.endsWith('.yaml') || file.endsWith('.yml'))
      .sort();
    if (files.length === 0) throw crdError(crdsDir, 'holds no .yaml files');
    const definitions = files.flatMap((file) => {
      const path = join(crdsDir, file);
      return parseAllDocuments(readFileSync(path, 'utf8')).map((document, index) => {
        if (document.errors.length > 0)
          throw crdError(`${path} document ${index}`, `is not valid YAML: ${document.errors[0]?.message ?? ''}`);
        return { source: `${path} document ${index}`, definition: document.toJS() as unknown };
      });
    });
    return CrdValidator.#build(definitions);
  }

  /** Builds a validator from CRD objects already parsed, e.g. from a Helm chart or a test. */
  static fromDefinitions(definitions: readonly CustomResourceDefinition[]): CrdValidator {
    return CrdValidator.#build(definitions.map((definition, index) => ({ source: `definition ${index}`, definition })));
  }

  static #build(definitions: readonly { source: string; definition: unknown }[]): CrdValidator {
    const kinds = new Map<string, ServedKind>();
    for (const { source, definition } of definitions) {
      if (!isObject(definition) || definition.apiVersion !== 'apiextensions.k8s.io/v1' || definition.kind !== 'CustomResourceDefinition') {
        throw crdError(source, 'is not an apiextensions.k8s.io/v1 CustomResourceDefinition');
      }
      for (const served of servedKinds(definition as unknown as CustomResourceDefinition, source)) {
        const key = kindKey(served.info.apiVersion, served.info.kind);
        if (kinds.has(key)) throw crdError(source, `defines ${served.info.kind} at ${served.info.apiVersion} a second time`);
        kinds.set(key, served);
      }
    }
    return new CrdValidator(kinds);
  }

  /** Every kind at every served version. */
  kinds(): readonly KindInfo[] {
    return [...this.#kinds.values()].map((served) => served.info);
  }

  /** The kind an object of `apiVersion` and `kind` is, or undefined when no CRD serves it. */
  kindOf(apiVersion: string, kind: string): KindInfo | undefined {
    return this.#kinds.get(kindKey(apiVersion, kind))?.info;
  }

  /**
   * Prunes, defaults and validates `object` as the API server does on create, or on update when
   * `old` (the stored object) is given: only then do transition rules such as `self == oldSelf`
   * run, and errors in values the update left unchanged are dropped (validation ratcheting).
   * The caller sets `metadata.namespace` to the request's namespace first, as the API server does.
   * Neither argument is changed.
   *
   * @throws OperatorError UNKNOWN_KIND when the object names no apiVersion and kind a CRD serves.
   */
  validate(object: unknown, old?: unknown): ValidationResult {
    const served = this.#servedKindOf(object, 'object');
    const copy = asJson(object);
    const unknownFields = pruneUnknownFields(copy, served.schema);
    const meta = coerceObjectMeta(copy);
    unknownFields.push(...meta.unknownFields);
    pruneNulls(copy, served.schema);
    applyDefaults(copy, served.schema);
    const before = old === undefined ? undefined : this.#stored(old, served);

    const errors: FieldError[] = [...meta.errors];
    if (meta.errors.length === 0) {
      const metadata = isObject(copy.metadata) ? copy.metadata : {};
      errors.push(...validateObjectMeta(metadata, served.info.namespaced));
      if (before !== undefined) errors.push(...immutableMetaErrors(metadata, isObject(before.metadata) ? before.metadata : {}));
    }
    const oldRoot: Old = before === undefined ? undefined : { value: before };
    errors.push(...validateSchema(served.schema, copy, oldRoot));
    if (served.info.subresources.scale !== undefined) errors.push(...scaleErrors(served.info.subresources.scale, copy));
    errors.push(...validateListTypes(served.schema, copy));
    if (errors.some((error) => BLOCKING.has(error.type))) {
      errors.push({
        type: FieldErrorType.Invalid,
        field: '<nil>',
        value: null,
        message:
          'some validation rules were not checked because the object was invalid; correct the existing errors to complete validation',
      });
    } else {
      errors.push(...validateRules(served.schema, copy, oldRoot, ''));
    }
    return { object: copy as unknown as KubeObject, errors, unknownFields };
  }

  /** The old object of an update as the API server reads it from storage: pruned and defaulted. */
  #stored(old: unknown, served: ServedKind): Record<string, unknown> {
    if (this.#servedKindOf(old, 'old object') !== served)
      throw new OperatorError(OperatorErrorCode.UnknownKind, `the old object is not a ${served.info.kind} of ${served.info.apiVersion}`);
    const copy = asJson(old);
    pruneUnknownFields(copy, served.schema);
    coerceObjectMeta(copy);
    pruneNulls(copy, served.schema);
    applyDefaults(copy, served.schema);
    return copy;
  }

  #servedKindOf(object: unknown, what: string): ServedKind {
    if (!isObject(object))
      throw new OperatorError(
        OperatorErrorCode.UnknownKind,
        `the ${what} must be a JSON object, got ${object === null ? 'null' : Array.isArray(object) ? 'an array' : typeof object}`,
      );
    const { apiVersion, kind } = object;
    if (typeof apiVersion !== 'string' || apiVersion === '' || typeof kind !== 'string' || kind === '') {
      throw new OperatorError(
        OperatorErrorCode.UnknownKind,
        `the ${what} must name its apiVersion and kind, got apiVersion ${JSON.stringify(apiVersion)} and kind ${JSON.stringify(kind)}`,
      );
    }
    const served = this.#kinds.get(kindKey(apiVersion, kind));
    if (served === undefined) {
      const known = this.kinds()
        .map((info) => `${info.kind} (${info.apiVersion})`)
        .join(', ');
      throw new OperatorError(OperatorErrorCode.UnknownKind, `no CRD serves kind ${kind} at ${apiVersion}; the kinds served are ${known}`);
    }
    return served;
  }
}

/** A deep copy of the object as JSON has it (undefined properties gone, dates as strings), to work on in place. */
function asJson(object: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(object)) as Record<string, unknown>;
}

function kindKey(apiVersion: string, kind: string): string {
  return `${apiVersion}/${kind}`;
}

function servedKinds(crd: CustomResourceDefinition, source: string): ServedKind[] {
  const { group, names, scope, versions } = crd.spec ?? {};
  if (typeof group !== 'string' || names?.kind === undefined || typeof names.plural !== 'string' || !Array.isArray(versions)) {
    throw crdError(source, 'needs spec.group, spec.names.kind, spec.names.plural and spec.versions');
  }
  return versions
    .filter((version) => version.served)
    .map((version, index) => {
      const schema = version.schema?.openAPIV3Schema;
      if (schema === undefined) throw crdError(source, `version ${version.name} has no openAPIV3Schema`);
      const info: KindInfo = {
        group,
        version: version.name,
        apiVersion: `${group}/${version.name}`,
        kind: names.kind,
        listKind: names.listKind ?? `${names.kind}List`,
        plural: names.plural,
        singular: names.singular ?? names.kind.toLowerCase(),
        shortNames: names.shortNames ?? [],
        categories: names.categories ?? [],
        namespaced: scope === 'Namespaced',
        storage: version.storage,
        subresources: {
          status: version.subresources?.status !== undefined,
          ...(version.subresources?.scale === undefined ? {} : { scale: version.subresources.scale }),
        },
        printerColumns: version.additionalPrinterColumns ?? [],
      };
      return { info, schema: compileSchema(schema, `${source} spec.versions[${index}].schema.openAPIV3Schema`) };
    });
}

/** On update, metadata.name and metadata.namespace must stay what they were. */
function immutableMetaErrors(metadata: Record<string, unknown>, before: Record<string, unknown>): FieldError[] {
  return (['name', 'namespace'] as const)
    .filter((key) => (metadata[key] ?? '') !== (before[key] ?? ''))
    .map((key) => ({ type: FieldErrorType.Invalid, field: `metadata.${key}`, value: metadata[key] ?? '', message: 'field is immutable' }));
}

/**
 * The scale subresource's checks: replicas at its spec and status paths must be int32 integers
 * and the selector a string. The API server names these fields by their JSON path, leading dot
 * included (`.spec.replicas`).
 */
function scaleErrors(scale: ScaleSubresource, object: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  for (const path of [scale.specReplicasPath, scale.statusReplicasPath]) {
    const value = valueAt(object, path);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !isInt64(value)) {
      errors.push({
        type: FieldErrorType.Invalid,
        field: path,
        value: 0,
        message: `${path} accessor error: ${goPrint(value)} is of the type ${goType(value)}, expected int64`,
      });
    } else if (value < 0) errors.push({ type: FieldErrorType.Invalid, field: path, value, message: 'should be a non-negative integer' });
    else if (value > 2 ** 31 - 1)
      errors.push({ type: FieldErrorType.Invalid, field: path, value, message: `should be less than or equal to ${2 ** 31 - 1}` });
  }
  if (scale.labelSelectorPath !== undefined) {
    const selector = valueAt(object, scale.labelSelectorPath);
    if (selector !== undefined && typeof selector !== 'string') {
      const path = scale.labelSelectorPath;
      errors.push({
        type: FieldErrorType.Invalid,
        field: path,
        value: '',
        message: `${path} accessor error: ${goPrint(selector)} is of the type ${goType(selector)}, expected string`,
      });
    }
  }
  return errors;
}

/** The value at a JSON path such as `.spec.replicas`; undefined when a step is missing. */
function valueAt(object: Record<string, unknown>, path: string): unknown {
  let value: unknown = object;
  for (const key of path.replace(/^\./, '').split('.')) {
    if (!isObject(value)) return undefined;
    value = value[key];
  }
  return value;
}

/** Go's `%T` of a decoded JSON value. */
function goType(value: unknown): string {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number') return isInt64(value) ? 'int64' : 'float64';
  if (Array.isArray(value)) return '[]interface {}';
  return value === null ? '<nil>' : 'map[string]interface {}';
}

/** Go's `%v` of a decoded JSON value, for the scalars an accessor error shows. */
function goPrint(value: unknown): string {
  if (typeof value === 'number') return isInt64(value) ? String(value) : goFloat(value);
  if (value === null) return '<nil>';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
