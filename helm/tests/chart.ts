/**
 * Test support for the chart's tests: the harness's helm binary run as a user runs it, and
 * `helm template` output parsed into objects.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { infra } from '@troupe/harness';
import { parseAllDocuments } from 'yaml';

/** helm/, the chart. */
export const CHART_DIR = fileURLToPath(new URL('../', import.meta.url));
/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Values files of the tests. */
export const VALUES_DIR = fileURLToPath(new URL('./values/', import.meta.url));

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the harness's helm; never throws on a non-zero exit. */
export function helm(args: readonly string[]): Promise<HelmResult> {
  return new Promise((resolve) => {
    execFile(infra().helm.binary, args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

/** A Kubernetes object as the chart renders it. */
export interface Rendered {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface RenderOptions {
  /** Values files, applied in order after the chart's values.yaml. */
  values?: readonly string[];
  /** `--set` pairs. */
  set?: Readonly<Record<string, string>>;
  /** APIs the target cluster is said to serve beyond the built-in ones (`--api-versions`). */
  apiVersions?: readonly string[];
  namespace?: string;
  includeCrds?: boolean;
}

/** `helm template` of the chart, as the YAML stream helm prints; throws with helm's message when it refuses. */
export async function template(options: RenderOptions = {}): Promise<string> {
  const args = [
    'template',
    'troupe',
    CHART_DIR,
    '--namespace',
    options.namespace ?? 'troupe-system',
    ...(options.includeCrds ? ['--include-crds'] : []),
    ...(options.values ?? []).flatMap((file) => ['-f', file]),
    ...Object.entries(options.set ?? {}).flatMap(([key, value]) => ['--set', `${key}=${value}`]),
    ...(options.apiVersions ?? []).flatMap((api) => ['--api-versions', api]),
  ];
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** `helm template` of the chart, parsed. */
export async function render(options: RenderOptions = {}): Promise<Rendered[]> {
  return parseAllDocuments(await template(options))
    .map((document) => document.toJS() as Rendered | null)
    .filter((object): object is Rendered => object !== null);
}

/**
 * The one rendered object of a kind and name, typed as the caller expects that kind to be;
 * throws naming what was rendered when it is missing.
 *
 * @example
 * const operator = find<V1Deployment>(objects, 'Deployment', 'troupe-operator');
 */
export function find<T>(objects: readonly Rendered[], kind: string, name: string): T {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
  if (found === undefined) throw new Error(`no ${kind} ${name} rendered; rendered: ${names(objects).join(', ')}`);
  return found as T;
}

/** `Kind/name` of each object. */
export function names(objects: readonly Rendered[]): string[] {
  return objects.map((object) => `${object.kind}/${object.metadata.name}`);
}
