/**
 * The informer against the real API server, on a CustomResourceDefinition of the test's own:
 * it keeps retrying with backoff while the resource is not served yet; it relists when the API
 * server answers 410 Gone (here after a CRD update resets the resource's watch cache) and its
 * cache converges, deletions included; and it hands every object to its handlers again on resync.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKubeConfig, createNamespace, kubectl, kubectlOk } from '../testing/cluster.js';
import { KubeClient, resourceType } from './client.js';
import { Informer } from './informer.js';
import { jsonLogger } from './log.js';
import type { KubeObject } from './types.js';

const GROUP = `g${randomBytes(3).toString('hex')}.informer-test.troupe.dev`;
const Gizmos = resourceType<KubeObject & { spec: { color: string } }>(GROUP, 'v1', 'Gizmo', 'gizmos');

/** The test's CRD; `column` changes its printer column, an update that resets the resource's storage. */
function crd(column: string): string {
  return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: gizmos.${GROUP} }
spec:
  group: ${GROUP}
  scope: Namespaced
  names: { kind: Gizmo, plural: gizmos, singular: gizmo, listKind: GizmoList }
  versions:
    - name: v1
      served: true
      storage: true
      additionalPrinterColumns: [{ name: ${column}, type: string, jsonPath: .spec.color }]
      schema: { openAPIV3Schema: { type: object, properties: { spec: { type: object, x-kubernetes-preserve-unknown-fields: true } } } }
`;
}

describe('Informer', () => {
  let namespace = '';
  const client = new KubeClient({ config: adminKubeConfig() });
  const informers: Informer<KubeObject>[] = [];
  const gizmos = (...names: string[]) =>
    names
      .map((name) => `apiVersion: ${GROUP}/v1\nkind: Gizmo\nmetadata: { name: ${name}, namespace: ${namespace} }\nspec: { color: red }\n`)
      .join('---\n');
  const informer = (options: Partial<ConstructorParameters<typeof Informer>[0]> = {}) => {
    const created = new Informer({ client, type: Gizmos, namespaces: [namespace], backoff: { initialMs: 50, maxMs: 400 }, ...options });
    informers.push(created as unknown as Informer<KubeObject>);
    return created;
  };

  beforeAll(async () => {
    namespace = await createNamespace('informer');
  });
  afterAll(async () => {
    await Promise.all(informers.map((started) => started.stop()));
    client.close();
    await kubectl(['delete', 'crd', `gizmos.${GROUP}`, '--wait=false']);
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('retries with backoff while the resource is not served, and syncs once it is', async () => {
    const early = informer();
    early.start();
    await expect.poll(() => early.stats.failures, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    await kubectlOk(['apply', '-f', '-'], crd('Color'));
    await kubectlOk(['wait', '--for=condition=Established', `crd/gizmos.${GROUP}`, '--timeout=30s']);
    await kubectlOk(['apply', '-f', '-'], gizmos('g1'));
    await early.synced();
    await expect.poll(() => early.list().map((object) => object.metadata.name), { timeout: 10_000 }).toEqual(['g1']);
  });

  it('relists after 410 Gone and converges, telling handlers what it missed', async () => {
    await kubectlOk(['apply', '-f', '-'], gizmos('g2'));
    const seen: string[] = [];
    const lines: string[] = [];
    const watched = informer({ log: jsonLogger('debug', (line) => lines.push(line)) });
    watched.addHandler({
      onAdd: (object) => seen.push(`add ${object.metadata.name}`),
      onDelete: (object) => seen.push(`delete ${object.metadata.name}`),
    });
    watched.start();
    await watched.synced();
    expect(seen.sort()).toEqual(['add g1', 'add g2']);

    // Changing the CRD makes the API server end the resource's watches and rebuild its watch
    // cache: the informer's resourceVersion is older than anything the new cache has, so
    // resuming the watch answers 410 Gone. The changes below happen while it is cut off.
    await kubectlOk(['apply', '-f', '-'], crd('Colour'));
    await expect
      .poll(() => lines.some((line) => line.includes('"watch ended, resuming"') || line.includes('"resourceVersion expired, relisting"')), {
        timeout: 30_000,
      })
      .toBe(true);
    // kubectl's discovery may not know the changed CRD for a moment: it answers NotFound until then.
    await expect.poll(async () => (await kubectl(['delete', 'gizmo', 'g1', '-n', namespace])).code, { timeout: 30_000 }).toBe(0);
    await expect.poll(async () => (await kubectl(['apply', '-f', '-'], gizmos('g3'))).code, { timeout: 30_000 }).toBe(0);
    await expect.poll(() => watched.stats.gone, { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    await expect
      .poll(
        () =>
          watched
            .list()
            .map((object) => object.metadata.name)
            .sort(),
        { timeout: 30_000 },
      )
      .toEqual(['g2', 'g3']);
    expect(watched.stats.lists).toBeGreaterThanOrEqual(2);
    expect(seen).toEqual(expect.arrayContaining(['delete g1', 'add g3']));
  });

  it('hands every cached object to its handlers again on resync', async () => {
    const resyncs: string[] = [];
    const resyncing = informer({ resyncMs: 100 });
    resyncing.addHandler({ onUpdate: (previous, current) => previous === current && resyncs.push(current.metadata.name) });
    resyncing.start();
    await resyncing.synced();
    await expect.poll(() => new Set(resyncs).size, { timeout: 10_000 }).toBe(2);
    expect(resyncs.filter((name) => name === 'g2').length).toBeGreaterThanOrEqual(1);
  });
});
