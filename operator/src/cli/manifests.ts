/**
 * Manifests as `troupe apply -f` (and `npm start`, for the samples) takes them: every YAML
 * document of a file or of a directory's *.yaml, *.yml and *.json files (in name order, so
 * `00-namespace.yaml` goes first), each checked with the CRD validator before anything is sent,
 * then created, or updated in place keeping what the server and other clients own (status,
 * finalizers, annotations the file does not set).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { OperatorError, OperatorErrorCode } from '../errors.js';
import type { KubeClient } from '../kube/client.js';
import type { KubeObject } from '../kube/types.js';
import type { CrdValidator } from '../schema/validator.js';
import { describeInvalid } from '../schema/field-error.js';
import { CliError, ExitCode } from './exit-codes.js';
import type { CliKind, KindCatalog } from './kinds.js';

/** One document to apply, where it came from, and its kind. */
export interface Manifest {
  /** `file.yaml` or `file.yaml#2` for the second document of a file. */
  source: string;
  object: KubeObject;
  kind: CliKind;
}

/** What applying one manifest did. */
export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

/** Writes lost to a concurrent writer (the operator writing status) are retried this often. */
const CONFLICT_RETRIES = 5;

function files(path: string): string[] {
  let stats;
  try {
    stats = statSync(path);
  } catch {
    throw new CliError(ExitCode.Refused, `${path}: no such file or directory`);
  }
  if (!stats.isDirectory()) return [path];
  return readdirSync(path)
    .filter((name) => /\.(ya?ml|json)$/.test(name))
    .sort()
    .map((name) => join(path, name));
}

/**
 * Reads every document of `path`, placing namespaced objects that name no namespace in
 * `namespace`; refuses (exit 1) YAML that does not parse, kinds the CLI does not apply, and an
 * object whose namespace differs from an explicit `--namespace`.
 */
export function readManifests(path: string, catalog: KindCatalog, namespace: { name: string; explicit: boolean }): Manifest[] {
  const manifests: Manifest[] = [];
  for (const file of files(path)) {
    const documents = parseAllDocuments(readFileSync(file, 'utf8'));
    documents.forEach((document, index) => {
      const source = documents.length > 1 ? `${basename(file)}#${index + 1}` : basename(file);
      if (document.errors.length > 0)
        throw new CliError(ExitCode.Refused, `${source}: not valid YAML: ${document.errors[0]?.message.split('\n')[0]}`);
      const object = document.toJS() as (Partial<KubeObject> & { apiVersion?: string; kind?: string }) | null;
      if (object === null) return;
      if (typeof object !== 'object' || typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') {
        throw new CliError(ExitCode.Refused, `${source}: a manifest needs apiVersion and kind`);
      }
      const kind = catalog.ofManifest(object.apiVersion, object.kind);
      if (kind === undefined)
        throw new CliError(
          ExitCode.Refused,
          `${source}: troupe does not apply ${object.kind} (${object.apiVersion}); it applies the troupe.dev kinds, Namespaces, Secrets and ConfigMaps`,
        );
      const metadata = { ...(object.metadata ?? {}) } as KubeObject['metadata'];
      if (typeof metadata.name !== 'string' || metadata.name === '')
        throw new CliError(ExitCode.Refused, `${source}: ${object.kind} has no metadata.name`);
      if (kind.namespaced) {
        if (metadata.namespace !== undefined && namespace.explicit && metadata.namespace !== namespace.name) {
          throw new CliError(
            ExitCode.Refused,
            `${source}: the namespace of ${object.kind} ${metadata.name} is "${metadata.namespace}", not "${namespace.name}" as --namespace says`,
          );
        }
        metadata.namespace ??= namespace.name;
      } else {
        delete metadata.namespace;
      }
      manifests.push({ source, object: { ...object, metadata } as KubeObject, kind });
    });
  }
  return manifests;
}

/**
 * The API server's refusal of every troupe.dev manifest the CRD schemas refuse, one line each
 * (`source: Project.troupe.dev "x" is invalid: spec.budget: Required value`); empty when all pass.
 */
export function refusals(manifests: readonly Manifest[], validator: CrdValidator): string[] {
  const refused: string[] = [];
  for (const { source, object, kind } of manifests) {
    if (kind.info === undefined) continue;
    let errors;
    try {
      errors = validator.validate(object).errors;
    } catch (error) {
      if (error instanceof OperatorError && error.code === OperatorErrorCode.UnknownKind) {
        refused.push(`${source}: ${error.message}`);
        continue;
      }
      throw error;
    }
    if (errors.length > 0)
      refused.push(`${source}: ${describeInvalid({ group: kind.type.group, kind: kind.type.kind }, object.metadata.name, errors)}`);
  }
  return refused;
}

/**
 * Creates the object, or (unless `createOnly`) updates it: the file's fields replace the stored
 * ones, while status, finalizers and labels or annotations the file does not name are kept.
 */
export async function applyManifest(client: KubeClient, manifest: Manifest, options: { createOnly?: boolean } = {}): Promise<ApplyOutcome> {
  const { type } = manifest.kind;
  const { namespace = '', name } = manifest.object.metadata;
  for (let attempt = 0; ; attempt++) {
    const current = await client.get(type, namespace, name);
    try {
      if (current === undefined) {
        await client.create(type, manifest.object);
        return 'created';
      }
      if (options.createOnly) return 'unchanged';
      const { metadata, ...fields } = manifest.object;
      const next: KubeObject = {
        ...current,
        ...fields,
        metadata: {
          ...current.metadata,
          labels: merged(current.metadata.labels, metadata.labels),
          annotations: merged(current.metadata.annotations, metadata.annotations),
        },
      };
      const written = await client.replace(type, next);
      return written.metadata.resourceVersion === current.metadata.resourceVersion ? 'unchanged' : 'configured';
    } catch (error) {
      // Someone (the operator writing status) got there first: read again and write again.
      const retry = error instanceof OperatorError && error.code === OperatorErrorCode.Conflict && attempt < CONFLICT_RETRIES;
      if (!retry) throw error;
    }
  }
}

function merged(stored: Record<string, string> | undefined, given: Record<string, string> | undefined): Record<string, string> | undefined {
  return stored === undefined && given === undefined ? undefined : { ...stored, ...given };
}
