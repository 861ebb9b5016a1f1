/**
 * The embedded API server as the operator's own clients see it: the KubeClient and an Informer
 * against `startEmbeddedApiServer` on loopback, with the CRDs of crds/. Optimistic concurrency,
 * generation and the status and scale subresources, finalizers, watches that resume and expire,
 * refusals worded as the API server words them, bearer tokens, and objects that outlive a restart.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '@troupe/runtime/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentPools, type AgentPool } from '../api/v1alpha1/agentpool.types.js';
import { Projects, type Project } from '../api/v1alpha1/project.types.js';
import { KubeApiError } from '../errors.js';
import { KubeClient, resourceType, type WatchEvent } from '../kube/client.js';
import { Informer } from '../kube/informer.js';
import { Secrets } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { CRDS_DIR } from '../testing/cluster.js';
import { startEmbeddedApiServer, type EmbeddedApiServer } from './embedded-api-server.js';
import { readKubeconfig, writeKubeconfig } from './kubeconfig.js';

const Namespaces = resourceType<KubeObject>('', 'v1', 'Namespace', 'namespaces');

function pool(name: string, replicas = 1): AgentPool {
  return {
    apiVersion: 'troupe.dev/v1alpha1',
    kind: 'AgentPool',
    metadata: { name, namespace: 'acme' },
    spec: { role: 'developer', replicas, model: { provider: 'simulated', name: 'sim-small' } },
  };
}

/** The failure a call ends with, as the KubeClient reports it. */
async function refusal(call: Promise<unknown>): Promise<KubeApiError> {
  const error = await call.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(KubeApiError);
  return error as KubeApiError;
}

describe('embedded API server', () => {
  let dataDir = '';
  let api: EmbeddedApiServer;
  let client: KubeClient;
  const token = randomBytes(24).toString('hex');

  async function start(options: { historySize?: number } = {}): Promise<void> {
    api = await startEmbeddedApiServer({ dataDir, crdsDir: CRDS_DIR, token, port: 0, ...options });
    writeKubeconfig(join(dataDir, 'kubeconfig'), { server: api.url, token });
    client = new KubeClient({ config: readKubeconfig(join(dataDir, 'kubeconfig')).config, fieldManager: 'troupe-test' });
  }

  async function stop(): Promise<void> {
    client.close();
    await api.stop();
  }

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'troupe-resources-'));
    await start();
    await client.create(Namespaces, { metadata: { name: 'acme' } });
  });
  afterEach(async () => {
    await stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('creates and gets objects, refusing a taken name (409 AlreadyExists) and a namespace that does not exist (404)', async () => {
    const created = await client.create(AgentPools, pool('developers'));
    expect(created.metadata).toMatchObject({
      name: 'developers',
      namespace: 'acme',
      generation: 1,
      uid: expect.any(String),
      resourceVersion: expect.any(String),
    });
    // Defaulted by the CRD schema, as the API server defaults it.
    expect(created.spec.concurrency).toBe(4);
    expect(await client.get(AgentPools, 'acme', 'developers')).toEqual(created);
    const taken = await refusal(client.create(AgentPools, pool('developers')));
    expect(taken).toMatchObject({ status: 409, reason: 'AlreadyExists' });
    expect(taken.message).toContain('agentpools.troupe.dev "developers" already exists');
    const nowhere = await refusal(client.create(AgentPools, { ...pool('qa'), metadata: { name: 'qa', namespace: 'nowhere' } }));
    expect(nowhere).toMatchObject({ status: 404, reason: 'NotFound' });
    expect(nowhere.message).toContain('namespaces "nowhere" not found');
    expect(await client.get(AgentPools, 'acme', 'missing')).toBeUndefined();
  });

  it("refuses an invalid custom resource with 422 and the API server's message naming the field", async () => {
    const invalid = await refusal(client.create(AgentPools, pool('huge', 5000)));
    expect(invalid).toMatchObject({ status: 422, reason: 'Invalid' });
    expect(invalid.message).toContain(
      'AgentPool.troupe.dev "huge" is invalid: spec.replicas: Invalid value: 5000: spec.replicas in body should be less than or equal to 1000',
    );
    const project = {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'Project',
      metadata: { name: 'shop', namespace: 'acme' },
      spec: { client: 'acme', brief: 'a shop' },
    } as unknown as Project;
    expect((await refusal(client.create(Projects, project))).message).toContain('spec.budget: Required value');
    expect(await client.get(AgentPools, 'acme', 'huge')).toBeUndefined();
  });

  it('refuses a write made on a stale resourceVersion with 409 Conflict, by replace and by merge patch', async () => {
    const first = await client.create(AgentPools, pool('developers'));
    const second = await client.replace(AgentPools, { ...first, spec: { ...first.spec, concurrency: 8 } });
    expect(Number(second.metadata.resourceVersion)).toBeGreaterThan(Number(first.metadata.resourceVersion));
    const stale = await refusal(client.replace(AgentPools, { ...first, spec: { ...first.spec, concurrency: 2 } }));
    expect(stale).toMatchObject({ status: 409, reason: 'Conflict' });
    expect(stale.message).toContain('the object has been modified; please apply your changes to the latest version and try again');
    const stalePatch = await refusal(
      client.patch(
        AgentPools,
        'acme',
        'developers',
        { metadata: { resourceVersion: first.metadata.resourceVersion }, spec: { concurrency: 2 } },
        { strategy: 'merge' },
      ),
    );
    expect(stalePatch.status).toBe(409);
    const patched = await client.patch(AgentPools, 'acme', 'developers', [{ op: 'replace', path: '/spec/concurrency', value: 16 }], {
      strategy: 'json',
    });
    expect(patched.spec.concurrency).toBe(16);
    expect((await refusal(client.patch(AgentPools, 'acme', 'developers', {}, { strategy: 'apply' }))).status).toBe(415);
  });

  it('bumps generation for spec writes only; status goes through its subresource and spec writes leave it alone', async () => {
    const created = await client.create(AgentPools, pool('developers'));
    const withStatus = await client.patch(
      AgentPools,
      'acme',
      'developers',
      { status: { replicas: 1, readyReplicas: 1 }, spec: { concurrency: 99 } },
      { strategy: 'merge', subresource: 'status' },
    );
    expect(withStatus.metadata.generation).toBe(1);
    expect(withStatus.status).toEqual({ replicas: 1, readyReplicas: 1 });
    expect(withStatus.spec.concurrency).toBe(4);
    const labelled = await client.patch(
      AgentPools,
      'acme',
      'developers',
      { metadata: { labels: { team: 'core' } } },
      { strategy: 'merge' },
    );
    expect(labelled.metadata.generation).toBe(1);
    const respecified = await client.replace(AgentPools, {
      ...labelled,
      spec: { ...labelled.spec, concurrency: 8 },
      status: { replicas: 0 },
    });
    expect(respecified.metadata.generation).toBe(2);
    expect(respecified.status).toEqual({ replicas: 1, readyReplicas: 1 });
    // Writing what is already stored changes nothing, not even the resourceVersion.
    const again = await client.replace(AgentPools, respecified);
    expect(again.metadata.resourceVersion).toBe(respecified.metadata.resourceVersion);
    expect(created.metadata.uid).toBe(again.metadata.uid);
  });

  it('serves the scale subresource of AgentPools: replicas from the spec, selector from the status, writes validated', async () => {
    await client.create(AgentPools, pool('developers', 2));
    await client.patch(
      AgentPools,
      'acme',
      'developers',
      { status: { replicas: 2, selector: 'troupe.dev/pool=developers' } },
      { strategy: 'merge', subresource: 'status' },
    );
    const scaled = (await client.patch(
      AgentPools,
      'acme',
      'developers',
      { spec: { replicas: 5 } },
      { strategy: 'merge', subresource: 'scale' },
    )) as unknown as { kind: string; spec: { replicas: number }; status: { replicas: number; selector: string } };
    expect(scaled).toMatchObject({ kind: 'Scale', spec: { replicas: 5 }, status: { replicas: 2, selector: 'troupe.dev/pool=developers' } });
    const after = await client.get(AgentPools, 'acme', 'developers');
    expect(after?.spec.replicas).toBe(5);
    expect(after?.metadata.generation).toBe(2);
    const tooMany = await refusal(
      client.patch(AgentPools, 'acme', 'developers', { spec: { replicas: 1001 } }, { strategy: 'merge', subresource: 'scale' }),
    );
    expect(tooMany).toMatchObject({ status: 422, reason: 'Invalid' });
    expect(tooMany.message).toContain('spec.replicas');
    expect((await refusal(client.patch(Secrets, 'acme', 'nope', {}, { strategy: 'merge', subresource: 'scale' }))).status).toBe(404);
  });

  it('holds a deletion while finalizers remain, refuses new ones, and deletes when the last goes', async () => {
    await client.create(Projects, {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'Project',
      metadata: { name: 'shop', namespace: 'acme', finalizers: ['troupe.dev/cancel-in-runtime'] },
      spec: { client: 'acme', brief: 'a shop', budget: { maxCostUSD: 1 } },
    });
    expect(await client.delete(Projects, 'acme', 'shop')).toBe(true);
    const held = await client.get(Projects, 'acme', 'shop');
    expect(held?.metadata.deletionTimestamp).toEqual(expect.any(String));
    const added = await refusal(
      client.patch(
        Projects,
        'acme',
        'shop',
        { metadata: { finalizers: ['troupe.dev/cancel-in-runtime', 'example.com/other'] } },
        { strategy: 'merge' },
      ),
    );
    expect(added).toMatchObject({ status: 422 });
    expect(added.message).toContain('no new finalizers can be added if the object is being deleted');
    await client.patch(Projects, 'acme', 'shop', { metadata: { finalizers: [] } }, { strategy: 'merge' });
    expect(await client.get(Projects, 'acme', 'shop')).toBeUndefined();
    expect(await client.delete(Projects, 'acme', 'shop')).toBe(false);
  });

  it('watches from a resourceVersion, so that a watch resumes where the last one left off', async () => {
    const first = await client.create(AgentPools, pool('pm'));
    await client.create(AgentPools, pool('qa'));
    await client.patch(AgentPools, 'acme', 'pm', { spec: { concurrency: 2 } }, { strategy: 'merge' });
    await client.create(Secrets, { metadata: { name: 'other-kind', namespace: 'acme' } });
    const seen: string[] = [];
    const abort = new AbortController();
    const watching = client.watch(
      AgentPools,
      { namespace: 'acme', resourceVersion: first.metadata.resourceVersion as string, timeoutSeconds: 30 },
      (event: WatchEvent<AgentPool>) =>
        seen.push(`${event.type} ${event.type === 'ERROR' ? event.object.reason : event.object.metadata.name}`),
      abort.signal,
    );
    await eventually(async () => expect(seen).toEqual(['ADDED qa', 'MODIFIED pm']));
    await client.delete(AgentPools, 'acme', 'qa');
    await eventually(async () => expect(seen).toEqual(['ADDED qa', 'MODIFIED pm', 'DELETED qa']));
    abort.abort();
    await watching.catch(() => undefined);
  });

  it('answers a watch from before the history it keeps with 410 Gone, as the API server does', async () => {
    await stop();
    await start({ historySize: 10 });
    const first = await client.create(AgentPools, pool('pm'));
    for (let concurrency = 1; concurrency <= 20; concurrency++)
      await client.patch(AgentPools, 'acme', 'pm', { spec: { concurrency } }, { strategy: 'merge' });
    const events: WatchEvent<AgentPool>[] = [];
    await client.watch(
      AgentPools,
      { namespace: 'acme', resourceVersion: first.metadata.resourceVersion as string, timeoutSeconds: 30 },
      (event) => events.push(event),
      AbortSignal.timeout(30_000),
    );
    expect(events).toEqual([{ type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' }) }]);
    // From the list's resourceVersion, the watch is served.
    const listed = await client.list(AgentPools, { namespace: 'acme' });
    const resumed: WatchEvent<AgentPool>[] = [];
    await client.watch(
      AgentPools,
      { namespace: 'acme', resourceVersion: listed.metadata.resourceVersion as string, timeoutSeconds: 1 },
      (event) => resumed.push(event),
      AbortSignal.timeout(30_000),
    );
    expect(resumed.filter((event) => event.type === 'ERROR')).toEqual([]);
  });

  it('answers 401 without the bearer token', async () => {
    const response = await fetch(`${api.url}/apis/troupe.dev/v1alpha1/namespaces/acme/agentpools`);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
    const unknown = await fetch(`${api.url}/apis/apps/v1/namespaces/acme/deployments`, { headers: { authorization: `Bearer ${token}` } });
    expect(unknown.status).toBe(404);
  });

  it('lists by label selector and in pages', async () => {
    for (const name of ['a', 'b', 'c', 'd', 'e'])
      await client.create(AgentPools, {
        ...pool(name),
        metadata: { name, namespace: 'acme', labels: { tier: name < 'c' ? 'gold' : 'silver' } },
      });
    expect(
      (await client.list(AgentPools, { namespace: 'acme', labelSelector: 'tier=gold' })).items.map((item) => item.metadata.name),
    ).toEqual(['a', 'b']);
    expect((await client.list(AgentPools, { namespace: 'acme', labelSelector: 'tier in (silver),tier!=gold' })).items).toHaveLength(3);
    const first = await client.list(AgentPools, { namespace: 'acme', limit: 2 });
    expect(first.items.map((item) => item.metadata.name)).toEqual(['a', 'b']);
    const second = await client.list(AgentPools, { namespace: 'acme', limit: 2, continue: first.metadata.continue });
    expect(second.items.map((item) => item.metadata.name)).toEqual(['c', 'd']);
    const informer = new Informer({ client, type: AgentPools, namespaces: ['acme'], pageSize: 2, resyncMs: 0 });
    informer.start();
    await informer.synced();
    expect(informer.list('acme')).toHaveLength(5);
    await informer.stop();
  });

  it('keeps objects, their resourceVersions and the watch history across a restart', async () => {
    const created = await client.create(AgentPools, pool('developers'));
    const secret = await client.create(Secrets, {
      metadata: { name: 'openai', namespace: 'acme' },
      data: { apiKey: Buffer.from('sk-test').toString('base64') },
    });
    await stop();
    await start();
    expect(await client.get(AgentPools, 'acme', 'developers')).toEqual(created);
    expect((await client.get(Secrets, 'acme', 'openai'))?.data).toEqual(secret.data);
    const informer = new Informer({ client, type: AgentPools, namespaces: ['acme'], resyncMs: 0 });
    const updates: number[] = [];
    informer.addHandler({ onUpdate: (_previous, current) => updates.push(current.spec.concurrency ?? 0) });
    informer.start();
    await informer.synced();
    const updated = await client.patch(AgentPools, 'acme', 'developers', { spec: { concurrency: 12 } }, { strategy: 'merge' });
    expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(Number(secret.metadata.resourceVersion));
    await eventually(async () => expect(updates).toContain(12));
    await informer.stop();
  });
});
