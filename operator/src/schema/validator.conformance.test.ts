/**
 * The embedded validator against the real API server, with the same CRDs: every manifest of
 * crds/invalid and a set of boundary cases are refused by both with the same field errors, word
 * for word (the `# expect:` text included); every sample, values at the edges of the schema, and
 * an object with fields the schema does not know are accepted by both and stored the same,
 * pruned and defaulted; and an update that changes spec.client is refused by both.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { CRDS_DIR, createNamespace, ensureCrds, kubectl, kubectlOk } from '../testing/cluster.js';
import { describeInvalid, fieldErrorText } from './field-error.js';
import { CrdValidator } from './validator.js';

const validator = CrdValidator.fromDirectory(CRDS_DIR);
const INVALID_DIR = `${CRDS_DIR}invalid/`;
const SAMPLES_DIR = `${CRDS_DIR}samples/`;

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  spec?: Record<string, unknown>;
}

const corpus = readdirSync(INVALID_DIR)
  .filter((file) => file.endsWith('.yaml'))
  .sort()
  .map((file) => {
    const text = readFileSync(INVALID_DIR + file, 'utf8');
    return { file, text, expected: /^# expect: (.+)$/m.exec(text)?.[1]?.trim() ?? '' };
  });

const samples = readdirSync(SAMPLES_DIR)
  .filter((file) => file.endsWith('.yaml'))
  .sort()
  .flatMap((file) =>
    documents(readFileSync(SAMPLES_DIR + file, 'utf8'))
      .filter((object) => object.kind !== 'Namespace')
      .map((object) => ({ name: `${file} ${object.kind}/${object.metadata.name}`, object })),
  );

const project = (name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): Manifest => ({
  apiVersion: 'troupe.dev/v1alpha1',
  kind: 'Project',
  metadata: { name, ...metadata },
  spec: { client: 'acme', brief: 'A landing page.', budget: { maxCostUSD: 2 }, ...spec },
});
const pool = (name: string, spec: Record<string, unknown>): Manifest => ({
  apiVersion: 'troupe.dev/v1alpha1',
  kind: 'AgentPool',
  metadata: { name },
  spec: { role: 'developer', model: { provider: 'simulated', name: 'sim-small' }, ...spec },
});

/** Boundaries of the keywords the CRDs use, beyond the corpus: the API server's words are the reference. */
const boundaries: { name: string; object: Manifest }[] = [
  { name: 'a brief one character too long', object: project('long-brief', { brief: 'x'.repeat(20001) }) },
  { name: 'an empty deliverables list', object: project('no-deliverables', { deliverables: [] }) },
  {
    name: 'a deliverable twice, an approval twice',
    object: project('twice', { deliverables: ['code', 'docs', 'code'], approvals: ['review', 'review'] }),
  },
  { name: 'a priority that is a string', object: project('string-priority', { priority: 'high' }) },
  { name: 'a priority with a fraction', object: project('fraction-priority', { priority: 2.5 }) },
  { name: 'a max cost below -1e6', object: project('big-negative-cost', { budget: { maxCostUSD: -1000000.5 } }) },
  {
    name: 'a max cost of zero and a deadline without zone',
    object: project('zero-cost', { budget: { maxCostUSD: 0 }, deadline: '2025-06-01T12:00:00' }),
  },
  {
    name: '33 pools',
    object: project('many-pools', { pools: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`role${i}`, `pool-${i}`])) }),
  },
  { name: 'a bad name and a bad label', object: project('Bad_Name', {}, { labels: { app: 'not ok' } }) },
  { name: 'negative replicas', object: pool('negative-replicas', { replicas: -1 }) },
  { name: 'a CPU request that is neither integer nor string', object: pool('fractional-cpu', { resources: { requests: { cpu: 0.5 } } }) },
  {
    name: 'rate limits above their maxima',
    object: pool('fast', { rateLimit: { requestsPerMinute: 1000001, tokensPerMinute: 1000000001 } }),
  },
  {
    name: 'a temperature below zero and a 300-character model name',
    object: pool('cold', { model: { provider: 'simulated', name: 'm'.repeat(300), temperature: -0.5 } }),
  },
  {
    name: 'an opaque base URL without host',
    object: {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'ModelProvider',
      metadata: { name: 'opaque' },
      spec: { type: 'ollama', baseURL: 'http:ollama.local' },
    },
  },
  {
    name: '33 phases, one needing a phase that does not exist',
    object: {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'Workflow',
      metadata: { name: 'long' },
      spec: {
        phases: Array.from({ length: 33 }, (_, i) => ({ name: `p${i}`, role: 'developer', ...(i === 1 ? { needs: ['nowhere'] } : {}) })),
      },
    },
  },
  {
    name: 'a phase loop back to itself',
    object: {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'Workflow',
      metadata: { name: 'self-loop' },
      spec: { phases: [{ name: 'a', role: 'qa', loop: { backTo: 'a', maxIterations: 2 } }] },
    },
  },
  { name: 'a deadline on a day February 2025 does not have', object: project('no-such-day', { deadline: '2025-02-29T10:00:00Z' }) },
  {
    name: 'a webhook URL with a space in its host',
    object: project('spaced-webhook', { notify: { webhooks: [{ url: 'https://hooks.acme .example/t' }], email: ['ops@acme'] } }),
  },
  {
    name: 'bad label keys, annotation keys and finalizers',
    object: project(
      'bad-meta',
      {},
      { labels: { 'team/web/x': 'a', '/app': 'b' }, annotations: { 'Not Valid': 'x' }, finalizers: ['troupe.dev/ok', 'no good'] },
    ),
  },
];

/** Values at the edges of what the schema allows, and beyond, accepted by both. */
const allowed: { name: string; object: Manifest }[] = [
  {
    name: 'the longest brief, a lowercase t in the deadline, the highest priority, 32 pools',
    object: project('edges', {
      brief: 'x'.repeat(20000),
      deadline: '2024-02-29t00:00:00.123+02:00',
      priority: 100,
      budget: { maxCostUSD: 0.0001, maxTokens: 1 },
      pools: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`role-${i}`, `pool-${i}`])),
      suspend: null,
    }),
  },
  {
    name: 'quantities as integers and strings, zero replicas',
    object: pool('quantities', {
      replicas: 0,
      resources: { requests: { cpu: 1, memory: '1.5Gi' }, limits: { 'example.com/gpu': '+2', cpu: '.5' } },
    }),
  },
  {
    name: 'a provider on an IPv6 address with a port',
    object: {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'ModelProvider',
      metadata: { name: 'ipv6' },
      spec: { type: 'ollama', baseURL: 'https://[::1]:11434/api' },
    },
  },
];

/** YAML documents as kubectl reads them (YAML 1.1, as sigs.k8s.io/yaml does). */
function documents(text: string): Manifest[] {
  return parseAllDocuments(text, { version: '1.1' })
    .map((document) => document.toJS() as Manifest | null)
    .filter((object): object is Manifest => object !== null);
}

/**
 * The field errors of the API server's refusal, one text each. kubectl prints an Invalid refusal
 * either as one line (`The Project "x" is invalid: <error>`) or as `* <error>` lines.
 */
function refusal(stderr: string): string[] {
  const bullets = stderr.split('\n').filter((line) => line.startsWith('* '));
  if (bullets.length > 0) return bullets.map((line) => line.slice(2).trim());
  const single = /is invalid: (.+)$/m.exec(stderr);
  return single?.[1] === undefined ? [] : [single[1].trim()];
}

const fieldOf = (text: string) => text.slice(0, text.indexOf(': '));

describe('the embedded validator agrees with the API server', () => {
  let namespace = '';
  const inNamespace = (object: Manifest): Manifest => ({ ...object, metadata: { ...object.metadata, namespace } });
  const serverCreate = (object: Manifest, extra: string[] = []) =>
    kubectl(['create', '--dry-run=server', '-o', 'json', ...extra, '-f', '-'], stringify(inNamespace(object)));
  const ours = (object: Manifest, old?: unknown) => validator.validate(inNamespace(object), old);

  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('schema');
  });
  afterAll(async () => {
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('has a corpus of at least 25 refusals and the samples of a whole company', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(25);
    expect(samples.map((sample) => sample.object.kind).sort()).toEqual([
      ...Array(6).fill('AgentPool'),
      'ModelProvider',
      'Project',
      'Workflow',
    ]);
  });

  it.each(corpus)('refuses $file as the API server does', async ({ text, expected }) => {
    const [object] = documents(text);
    if (object === undefined) throw new Error('no manifest in the file');
    const server = await serverCreate(object);
    expect(server.code, server.stdout).not.toBe(0);
    expect(server.stderr).toContain(expected);

    const { errors } = ours(object);
    const theirs = refusal(server.stderr);
    expect(errors.map((error) => error.field).sort()).toEqual(theirs.map(fieldOf).sort());
    expect(errors.map(fieldErrorText).sort()).toEqual(theirs.sort());
    const kind = validator.kindOf(object.apiVersion, object.kind);
    expect(kind).toBeDefined();
    if (kind !== undefined) expect(describeInvalid(kind, object.metadata.name, errors)).toContain(expected);
  });

  it.each(boundaries)('refuses $name with the same errors', async ({ object }) => {
    const server = await serverCreate(object);
    expect(server.code, server.stdout).not.toBe(0);
    const theirs = refusal(server.stderr);
    expect(theirs.length, server.stderr).toBeGreaterThan(0);
    expect(ours(object).errors.map(fieldErrorText).sort()).toEqual(theirs.sort());
  });

  it.each([...samples, ...allowed])('accepts $name and defaults it as the API server does', async ({ object }) => {
    const server = await serverCreate(object);
    expect(server.stderr).toBe('');
    const result = ours(object);
    expect(result.errors).toEqual([]);
    expect(result.object).toMatchObject({ spec: (JSON.parse(server.stdout) as Manifest).spec });
  });

  it('prunes the fields the schema does not know, as the API server does without strict validation', async () => {
    const object = project('extra-fields', { colour: 'red', notify: { webhooks: [{ url: 'https://hooks.acme.example/t', retries: 3 }] } });
    const strict = await serverCreate(object);
    expect(strict.stderr).toMatch(/unknown field "spec.colour"/);
    const server = await serverCreate(object, ['--validate=false']);
    expect(server.stderr).toBe('');
    const result = ours(object);
    expect(result.unknownFields.sort()).toEqual(['spec.colour', 'spec.notify.webhooks[0].retries']);
    expect((result.object as unknown as Manifest).spec).toEqual((JSON.parse(server.stdout) as Manifest).spec);
  });

  it('refuses changing spec.client of a stored project, and accepts other changes', async () => {
    const stored = project('immutable-client', {});
    await kubectlOk(['create', '-n', namespace, '-f', '-'], stringify(stored));
    const current = JSON.parse(await kubectlOk(['get', 'project', 'immutable-client', '-n', namespace, '-o', 'json'])) as Manifest;

    const moved = { ...stored, spec: { ...stored.spec, client: 'globex' } };
    const server = await kubectl(['apply', '--dry-run=server', '-n', namespace, '-f', '-'], stringify(moved));
    expect(server.code).not.toBe(0);
    expect(ours(moved, current).errors.map(fieldErrorText)).toEqual(refusal(server.stderr));
    expect(refusal(server.stderr)).toEqual(['spec.client: Invalid value: "string": spec.client is immutable']);

    const edited = { ...stored, spec: { ...stored.spec, brief: 'A bigger landing page.' } };
    expect((await kubectl(['apply', '--dry-run=server', '-n', namespace, '-f', '-'], stringify(edited))).code).toBe(0);
    expect(ours(edited, current).errors).toEqual([]);
  });
});
