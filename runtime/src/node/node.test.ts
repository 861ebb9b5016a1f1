/**
 * The runtime node as Kubernetes runs it — main.ts in a child process, configured by its
 * environment — on the real Kafka, Cassandra and Redis: /metrics scraped and parsed while nodes
 * work, /readyz following a Redis that stops and comes back, and SIGTERM in the middle of a
 * stream of commands, after which the other node has applied every one exactly once. A node
 * started in process runs a whole project, and its LLM metrics agree with what was bought.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import { ProjectPhase, RuntimeServiceClient, ServingStatus, type SubmitProject } from '@troupe/proto';
import { freePort, infra, parsePrometheus, sampleValue, startPrivateServer, type MetricFamily } from '@troupe/harness';
import { Kafka, logLevel } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobArtifactStore, FileBlobStore } from '../domain/artifacts.js';
import { SIM_PRICES, samplePools, submitCommand } from '../domain/company-fixtures.js';
import { Company } from '../domain/company.js';
import { StreamClient } from '../gateway/testing/stream-client.js';
import { Tokens } from '../gateway/tokens.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { SimulatedServer } from '../llm/simulated-server.js';
import { openStore } from '../store/open.js';
import { startChild, type ChildProgram } from '../testing/child-process.js';
import { eventually } from '../testing/eventually.js';
import { openTransport } from '../transport/open.js';
import { startNode } from './start-node.js';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
/** Kept across runs with the runtime nodes' group, so a run reads only the commands it sent. */
const KEYSPACE = 'troupe_node_test';
const GROUP = 'troupe.runtime';
const SECRET = 'node-test-token-secret-of-at-least-32-bytes';
const PROJECT_TOPIC = 'troupe.actor.project';
const PARTITIONS = 16;

interface NodeProcess {
  child: ChildProgram;
  nodeId: string;
  ops: string;
  grpc: string;
  gateway?: string;
}

interface Probe {
  status: number;
  body: { status: string; checks: { name: string; ok: boolean; error?: string }[] };
}

async function probe(url: string): Promise<Probe> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Probe['body'] };
}

async function scrape(node: { ops: string }): Promise<Map<string, MetricFamily>> {
  const response = await fetch(`${node.ops}/metrics`);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await response.text());
}

/** A suspended project's command: applying it journals one `submitted` event and nothing else. */
function suspended(namespace: string, name: string, generation: number): SubmitProject {
  const command = submitCommand(namespace, name);
  return { ...command, generation, spec: { ...command.spec!, suspend: true } };
}

describe('the runtime node', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const artifactsDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-node-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };

  /** main.ts in a child process, with the environment a pod would have, on free loopback ports. */
  async function node(name: string, env: Record<string, string> = {}): Promise<NodeProcess> {
    const nodeId = `${name}-${randomUUID().slice(0, 6)}`;
    const [httpPort, grpcPort, gatewayPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const child = startChild(MAIN, undefined, {
      env: {
        TROUPE_COMPONENTS: 'runtime',
        TROUPE_KAFKA_BROKERS: infra().kafka.brokers.join(','),
        TROUPE_CASSANDRA_CONTACT_POINTS: infra().cassandra.contactPoints.join(','),
        TROUPE_CASSANDRA_DATACENTER: infra().cassandra.localDataCenter,
        TROUPE_CASSANDRA_KEYSPACE: KEYSPACE,
        TROUPE_REDIS_URL: infra().redis.url,
        TROUPE_NODE_ID: nodeId,
        TROUPE_LISTEN_HOST: '127.0.0.1',
        TROUPE_HTTP_PORT: String(httpPort),
        TROUPE_GRPC_PORT: String(grpcPort),
        TROUPE_GATEWAY_PORT: String(gatewayPort),
        TROUPE_ARTIFACTS_DIR: artifactsDir(),
        TROUPE_TOKEN_SECRET: SECRET,
        ...env,
      },
    });
    cleanups.push(() => child.kill());
    const started: NodeProcess = {
      child,
      nodeId,
      ops: `http://127.0.0.1:${httpPort}`,
      grpc: `127.0.0.1:${grpcPort}`,
      gateway: `127.0.0.1:${gatewayPort}`,
    };
    const exited = child.exited.then((code) => {
      throw new Error(`node ${nodeId} exited with ${code} before it was ready:\n${child.stderr}`);
    });
    await Promise.race([eventually(async () => expect((await probe(`${started.ops}/readyz`)).status).toBe(200), 120_000, 250), exited]);
    // A later exit is the test's to check.
    exited.catch(() => {});
    return started;
  }

  /** The company's API from outside the nodes, as a gateway reaches it. */
  async function client(): Promise<Company> {
    const transport = await openTransport({ kind: 'kafka', brokers: infra().kafka.brokers, clientId: 'node-test-client' });
    const company = await Company.connect({
      transport,
      artifacts: new BlobArtifactStore({ blobs: new FileBlobStore(artifactsDir()) }),
      nodeId: `node-test-client-${randomUUID()}`,
    });
    cleanups.push(async () => {
      await company.stop();
      await transport.close();
    });
    return company;
  }

  /** The `submitted` generations each project's journal holds. */
  async function submittedGenerations(projects: readonly string[]): Promise<Map<string, number[]>> {
    const store = await openStore({ kind: 'cassandra', ...infra().cassandra, keyspace: KEYSPACE });
    try {
      const journals = new Map<string, number[]>();
      for (const project of projects) {
        const record = await store.load({ type: 'project', id: project });
        expect(record.snapshot, 'no snapshot hides events from the count').toBeUndefined();
        const events = record.events.map(
          (event) => JSON.parse(Buffer.from(event.data).toString()) as { type: string; generation?: number },
        );
        journals.set(
          project,
          events.filter((event) => event.type === 'submitted').map((event) => event.generation ?? 0),
        );
      }
      return journals;
    } finally {
      await store.close();
    }
  }

  const lagOf = (families: Map<string, MetricFamily>, topic: string) =>
    (families.get('troupe_mailbox_lag_messages')?.samples ?? []).filter((sample) => sample.labels.topic === topic);

  it('serves what a runtime node and a gateway node do on /metrics, and names each check of its probes', async () => {
    const runtime = await node('metrics-runtime');
    const gateway = await node('metrics-gateway', { TROUPE_COMPONENTS: 'gateway' });

    const runtimeReady = await probe(`${runtime.ops}/readyz`);
    expect(runtimeReady.body.status).toBe('ready');
    expect(runtimeReady.body.checks.map(({ name, ok }) => ({ name, ok }))).toEqual([
      { name: 'kafka', ok: true },
      { name: 'cassandra', ok: true },
      { name: 'redis', ok: true },
    ]);
    expect((await probe(`${gateway.ops}/readyz`)).body.checks.map(({ name }) => name)).toEqual(['kafka']);
    expect(await probe(`${runtime.ops}/healthz`)).toMatchObject({
      status: 200,
      body: { status: 'alive', checks: [{ name: 'event-loop', ok: true }] },
    });

    const families = await scrape(runtime);
    const types = Object.fromEntries([...families.values()].map((family) => [family.name, family.type]));
    expect(types).toMatchObject({
      troupe_actor_turns_total: 'counter',
      troupe_mailbox_lag_messages: 'gauge',
      troupe_llm_request_duration_seconds: 'histogram',
      troupe_llm_tokens_total: 'counter',
      troupe_llm_cost_usd_total: 'counter',
      troupe_budget_remaining_usd: 'gauge',
      process_cpu_user_seconds_total: 'counter',
      nodejs_eventloop_lag_seconds: 'gauge',
    });
    expect(types).not.toHaveProperty('troupe_gateway_websocket_clients');
    const gatewayTypes = Object.fromEntries([...(await scrape(gateway)).values()].map((family) => [family.name, family.type]));
    expect(gatewayTypes).toMatchObject({
      troupe_gateway_websocket_clients: 'gauge',
      troupe_gateway_websocket_dropped_clients_total: 'counter',
    });
    expect(gatewayTypes).not.toHaveProperty('troupe_actor_turns_total');

    // Work: two commands to each of five projects, sent as the gateway's API sends them.
    const turns = async () => sampleValue(await scrape(runtime), 'troupe_actor_turns_total', { actor_type: 'project', outcome: 'ok' }) ?? 0;
    const before = await turns();
    const namespace = `metrics-${randomUUID().slice(0, 8)}`;
    const company = await client();
    for (let generation = 1; generation <= 2; generation += 1) {
      for (let p = 0; p < 5; p += 1)
        await company.submitProject(`${namespace}/p${p}/${generation}`, suspended(namespace, `p${p}`, generation));
    }
    await eventually(async () => expect(await turns()).toBeGreaterThanOrEqual(before + 10), 60_000, 250);
    // Alone in its group, the node owns every partition of the project mailboxes, and catches up on each.
    await eventually(
      async () => {
        const lag = lagOf(await scrape(runtime), PROJECT_TOPIC);
        expect(lag.map((sample) => Number(sample.labels.partition)).sort((a, b) => a - b)).toEqual([...Array(PARTITIONS).keys()]);
        expect(lag.every((sample) => sample.value === 0)).toBe(true);
      },
      60_000,
      500,
    );

    // The gateway node runs no actors: it asks the runtime node through Kafka, and counts its stream clients.
    const token = new Tokens({ secret: SECRET }).sign({ sub: 'alice', tenant: namespace });
    const response = await fetch(`http://${gateway.gateway}/api/projects/${namespace}/p3`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ card: { namespace, name: 'p3', phase: 'Paused' } });
    // A cluster's pools are scaled by their AgentPool resources; the dashboard's Scale says how.
    const scaled = await fetch(`http://${gateway.gateway}/api/pools/${namespace}/developers/scale`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${new Tokens({ secret: SECRET }).sign({ sub: 'oncall', role: 'sre' })}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ replicas: 3 }),
    });
    expect(scaled.status).toBe(409);
    expect(await scaled.json()).toMatchObject({
      error: {
        message: `pool ${namespace}/developers is scaled by its AgentPool resource: kubectl scale agentpool developers -n ${namespace} --replicas=3`,
      },
    });
    const clients = async () => sampleValue(await scrape(gateway), 'troupe_gateway_websocket_clients');
    expect(await clients()).toBe(0);
    const stream = await StreamClient.connect(`ws://${gateway.gateway}/api/stream`, token);
    await eventually(async () => expect(await clients()).toBe(1));
    stream.close();
    await eventually(async () => expect(await clients()).toBe(0));
    expect(sampleValue(await scrape(gateway), 'troupe_gateway_websocket_dropped_clients_total')).toBe(0);

    for (const stopped of [gateway, runtime]) stopped.child.signal('SIGTERM');
    expect(await Promise.all([gateway.child.exited, runtime.child.exited])).toEqual([0, 0]);
  }, 240_000);

  it('answers gRPC calls only with a token signed with its TROUPE_TOKEN_SECRET', async () => {
    const runtime = await node('grpc-auth');
    const client = new RuntimeServiceClient(runtime.grpc, credentials.createInsecure());
    cleanups.push(async () => client.close());
    const health = (token: string | undefined) =>
      new Promise<unknown>((resolve) => {
        const metadata = new Metadata();
        if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
        client.health({}, metadata, (error, response) => resolve(error ? { code: error.code, details: error.details } : response));
      });
    expect(await health(undefined)).toEqual({
      code: status.UNAUTHENTICATED,
      details: 'send the token as the metadata authorization: Bearer <token>',
    });
    const elsewhere = new Tokens({ secret: 'another-secret-of-at-least-32-bytes!' }).sign({ sub: 'root', role: 'admin' });
    expect(await health(elsewhere)).toEqual({ code: status.UNAUTHENTICATED, details: 'the token signature is invalid' });
    expect(await health(new Tokens({ secret: SECRET }).sign({ sub: 'oncall', role: 'sre' }))).toMatchObject({
      status: ServingStatus.SERVING,
    });
  }, 240_000);

  it('is not ready while its Redis is down, and ready again once Redis is back', async () => {
    const redis = await startPrivateServer('redis');
    cleanups.push(() => redis.dispose());
    const runtime = await node('readiness', { TROUPE_REDIS_URL: redis.endpoint.url });
    const checks = async () => {
      const { status, body } = await probe(`${runtime.ops}/readyz`);
      return { status, checks: Object.fromEntries(body.checks.map((check) => [check.name, check.ok])) };
    };
    expect(await checks()).toEqual({ status: 200, checks: { kafka: true, cassandra: true, redis: true } });

    await redis.stop();
    await eventually(
      async () => expect(await checks()).toEqual({ status: 503, checks: { kafka: true, cassandra: true, redis: false } }),
      30_000,
      250,
    );
    const down = await probe(`${runtime.ops}/readyz`);
    expect(down.body.status).toBe('not ready');
    expect(down.body.checks.find((check) => check.name === 'redis')?.error).toBeTruthy();
    // Alive all the while: a dependency that is down is no reason to restart the process.
    expect((await probe(`${runtime.ops}/healthz`)).status).toBe(200);

    await redis.start();
    await eventually(
      async () => expect(await checks()).toEqual({ status: 200, checks: { kafka: true, cassandra: true, redis: true } }),
      60_000,
      250,
    );
  }, 240_000);

  it('drains on SIGTERM in the middle of a stream, exits 0 and leaves its group; the other node applies every command once', async () => {
    const [first, second] = await Promise.all([node('drain-a'), node('drain-b')]);
    const namespace = `drain-${randomUUID().slice(0, 8)}`;
    const projects = Array.from({ length: 16 }, (_, p) => `p${p}`);
    const rounds = 12;
    const company = await client();
    const firstTurns = async () =>
      sampleValue(await scrape(first), 'troupe_actor_turns_total', { actor_type: 'project', outcome: 'ok' }) ?? 0;

    for (let generation = 1; generation <= rounds; generation += 1) {
      for (const name of projects) {
        await eventually(
          () => company.submitProject(`${namespace}/${name}/${generation}`, suspended(namespace, name, generation)),
          60_000,
          250,
        );
      }
      if (generation === 4) {
        // The node to stop has been doing its share of the work.
        await eventually(async () => expect(await firstTurns()).toBeGreaterThan(0), 60_000, 250);
        first.child.signal('SIGTERM');
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await first.child.exited, `the stopped node's stderr:\n${first.child.stderr}`).toBe(0);
    expect(first.child.lines.at(-1)).toBe(`troupe node ${first.nodeId}: stopped`);

    // It left the group on its way out, rather than being dropped when its session ran out.
    const admin = new Kafka({ clientId: 'node-test-admin', brokers: infra().kafka.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const { groups } = await admin.describeGroups([GROUP]);
      expect(groups[0]?.members.map((member) => member.clientId)).not.toContain(first.nodeId);
    } finally {
      await admin.disconnect();
    }

    const expected = Array.from({ length: rounds }, (_, i) => i + 1);
    await eventually(
      async () => {
        const journals = await submittedGenerations(projects.map((name) => `${namespace}/${name}`));
        for (const [project, generations] of journals)
          expect(generations, `${project} applied each command once, in order`).toEqual(expected);
      },
      120_000,
      1_000,
    );
    await eventually(
      async () => {
        const lag = lagOf(await scrape(second), PROJECT_TOPIC);
        expect(lag).toHaveLength(PARTITIONS);
        expect(lag.every((sample) => sample.value === 0)).toBe(true);
      },
      60_000,
      500,
    );
    second.child.signal('SIGTERM');
    expect(await second.child.exited).toBe(0);
  }, 300_000);

  it('counts what a project’s LLM calls took, used and cost, and what is left of its budget', async () => {
    const server = await SimulatedServer.start({ latencyMs: 20, tokensPerSecond: Infinity, seed: 7 });
    cleanups.push(() => server.close());
    const namespace = `llm-${randomUUID().slice(0, 8)}`;
    const running = await startNode({
      components: ['runtime', 'pool'],
      transport: { kind: 'kafka', brokers: infra().kafka.brokers, clientId: 'node-test-llm' },
      store: { kind: 'cassandra', ...infra().cassandra, keyspace: KEYSPACE },
      services: { kind: 'redis', url: infra().redis.url },
      nodeId: `node-test-llm-${randomUUID().slice(0, 6)}`,
      host: '127.0.0.1',
      grpcPort: 0,
      httpPort: 0,
      artifactsDir: artifactsDir(),
      tokenSecret: SECRET,
      providers: [createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL, pricing: SIM_PRICES })],
      pools: samplePools(namespace),
      taskCheckMs: 1_000,
    });
    cleanups.push(() => running.stop());
    const ops = { ops: running.opsUrl };
    await running.company.submitProject(`${namespace}/shop`, submitCommand(namespace, 'shop', { maxCostUSD: 5 }));
    await eventually(
      async () => expect((await running.company.getProject(namespace, 'shop'))?.status?.phase).toBe(ProjectPhase.DELIVERED),
      180_000,
      500,
    );
    const cost = (await running.company.getProject(namespace, 'shop'))?.status?.cost;

    const families = await scrape(ops);
    const samples = (family: string, name = family) => (families.get(family)?.samples ?? []).filter((sample) => sample.name === name);
    const sum = (family: string, name: string, labels: Record<string, string> = {}) =>
      samples(family, name)
        .filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
        .reduce((total, sample) => total + sample.value, 0);
    // Every request the provider answered was timed, under its provider and model.
    expect(sum('troupe_llm_request_duration_seconds', 'troupe_llm_request_duration_seconds_count', { provider: 'simulated' })).toBe(
      server.stats().completions,
    );
    expect(
      new Set(samples('troupe_llm_request_duration_seconds', 'troupe_llm_request_duration_seconds_count').map((s) => s.labels.model)),
    ).toEqual(new Set(['sim-large', 'sim-small']));
    // Tokens and cost agree with what the project recorded it spent.
    expect(sum('troupe_llm_tokens_total', 'troupe_llm_tokens_total', { direction: 'input' })).toBe(cost?.tokensIn);
    expect(sum('troupe_llm_tokens_total', 'troupe_llm_tokens_total', { direction: 'output' })).toBe(cost?.tokensOut);
    expect(cost?.usd).toBeGreaterThan(0);
    expect(sampleValue(families, 'troupe_llm_cost_usd_total', { namespace })).toBeCloseTo(cost?.usd ?? 0, 9);
    expect(sampleValue(families, 'troupe_budget_remaining_usd', { namespace, project: 'shop' })).toBeCloseTo(5 - (cost?.usd ?? 0), 6);
    expect(sampleValue(families, 'troupe_actor_turns_total', { actor_type: 'llm-call', outcome: 'ok' })).toBeGreaterThan(0);
  }, 300_000);

  it('runs a project’s tasks on pool replicas of their own, which the project waits for', async () => {
    const server = await SimulatedServer.start({ latencyMs: 20, tokensPerSecond: Infinity, seed: 11 });
    cleanups.push(() => server.close());
    const namespace = `replicas-${randomUUID().slice(0, 8)}`;
    const common = {
      transport: { kind: 'kafka' as const, brokers: infra().kafka.brokers, clientId: `node-test-${namespace}` },
      store: { kind: 'cassandra' as const, ...infra().cassandra, keyspace: KEYSPACE },
      services: { kind: 'redis' as const, url: infra().redis.url },
      host: '127.0.0.1',
      httpPort: 0,
      artifactsDir: artifactsDir(),
      taskCheckMs: 1_000,
    };
    const runtime = await startNode({
      ...common,
      components: ['runtime'],
      nodeId: `${namespace}-runtime`,
      grpcPort: 0,
      tokenSecret: SECRET,
    });
    cleanups.push(() => runtime.stop());
    await runtime.company.submitProject(`${namespace}/shop`, submitCommand(namespace, 'shop', { maxCostUSD: 5 }));
    // No pool runs yet: the project's first task waits for one instead of failing.
    await eventually(async () => expect((await runtime.company.getProject(namespace, 'shop'))?.status?.currentPhase).toBe('requirements'));
    expect((await runtime.company.getProject(namespace, 'shop'))?.status?.progress?.tasksDone).toBe(0);

    const replica = (n: number) =>
      startNode({
        ...common,
        components: ['pool'],
        nodeId: `${namespace}-agents-${n}`,
        providers: [createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL, pricing: SIM_PRICES })],
        pools: samplePools(namespace),
      });
    const replicas = [await replica(0), await replica(1)];
    for (const started of replicas) cleanups.push(() => started.stop());
    expect(replicas.every((started) => started.grpcAddress === undefined)).toBe(true);

    await eventually(
      async () => {
        const { phase, conditions } = (await runtime.company.getProject(namespace, 'shop'))?.status ?? {};
        expect({ phase, conditions }).toMatchObject({ phase: ProjectPhase.DELIVERED });
      },
      180_000,
      500,
    );
    const status = (await runtime.company.getProject(namespace, 'shop'))?.status;
    // Every call was bought once, by whichever replica ran its task.
    expect(status?.cost?.llmCalls).toBe(server.stats().completions);
    // The runtime node runs no pool, and lists each one with the replicas that report it.
    await eventually(async () => {
      const pools = await runtime.company.listPools(namespace);
      expect(pools.map((entry) => [entry.status?.pool, entry.status?.ready]).sort()).toEqual(
        samplePools(namespace)
          .map((pool) => [pool.name, 2])
          .sort(),
      );
    }, 30_000);
  }, 300_000);

  // Last: a node that gave up draining stays in the runtime nodes' group until its session times out.
  it('gives up draining when its shutdown deadline passes, and exits non-zero', async () => {
    const runtime = await node('deadline', { TROUPE_SHUTDOWN_TIMEOUT_MS: '1' });
    runtime.child.signal('SIGTERM');
    expect(await runtime.child.exited).toBe(1);
    expect(runtime.child.stderr).toContain(`troupe node ${runtime.nodeId}: not stopped within 1 ms; exiting anyway`);
  }, 120_000);
});
