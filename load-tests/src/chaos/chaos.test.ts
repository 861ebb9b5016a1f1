/**
 * The chaos suite: 100 projects applied at once to a cluster on loopback — three runtime nodes
 * (the runtime and the agent pool in each), two operator replicas electing a leader, private
 * Kafka, Cassandra and Redis, the simulated LLM server — and, while they run, faults one after
 * the other: each runtime node killed with SIGKILL in turn; the Kafka broker restarted;
 * Cassandra frozen; Redis lost (and brought back later); the operator's leader killed. Each
 * project waits for the client's approval after its review, given once the last fault has
 * struck, so every fault hits all 100 projects in flight. At the end every project must be
 * Delivered as its Project resource says, the cost ledger must match the LLM server's own count
 * of the calls it sold, and no artefact may be missing or duplicated. The table of faults and
 * their outcomes is printed whatever happens, and the processes' last words when the test fails.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { infra } from '@troupe/harness';
import {
  AgentPools,
  APPROVE_ANNOTATION,
  GrpcRuntimeClient,
  KubeClient,
  ModelProviders,
  Projects,
  resourceType,
  Workflows,
  type KubeObject,
  type Project,
} from '@troupe/operator';
import { ProjectStatus, type ArchivePart } from '@troupe/proto';
import { SimulatedServer, Tokens } from '@troupe/runtime';
import { eventually } from '@troupe/runtime/testing';
import { afterAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  grpcTarget,
  Operators,
  planGateway,
  planNodes,
  podEnvironment,
  RuntimeNodes,
  startServers,
  type UnplannedExit,
} from './chaos-cluster.js';
import { companyResources, GATE, referenceDelivery, type CompanySize } from './chaos-company.js';
import { checkArtifacts, checkLedger } from './delivery-checks.js';
import {
  boughtAgain,
  faultTable,
  killNode,
  killOperatorLeader,
  loseRedis,
  pauseCassandra,
  restartBroker,
  runFaults,
  type FaultRecord,
} from './faults.js';

const SIZE: CompanySize = { projects: 100, concurrency: 8 };
const NODES = 3;
/** The simulated provider's time per call: long enough that a killed node dies with calls in flight. */
const LATENCY_MS = 1_000;
const SEED = 7;
/** How long any one recovery, a node's start or the reference delivery may take. */
const RECOVERY_TIMEOUT_MS = 120_000;
/** LLM calls the cluster must sell between two faults: each strikes a cluster at work. */
const CALLS_BETWEEN_FAULTS = 12;
const FREEZE_MS = 10_000;
const REDIS_OUTAGE_MS = 10_000;
/** After the last fault, how long the projects may take to be delivered. */
const DELIVERY_TIMEOUT_MS = 180_000;

const Namespaces = resourceType<KubeObject>('', 'v1', 'Namespace', 'namespaces');

describe('the chaos suite', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => console.error('chaos cleanup:', error));
  });

  it('delivers 100 concurrent projects through node kills, a broker restart, a Cassandra pause, and the loss of Redis and of the operator leader', async () => {
    const llm = await SimulatedServer.start({ latencyMs: LATENCY_MS, tokensPerSecond: Number.POSITIVE_INFINITY, seed: SEED });
    const referenceLlm = await SimulatedServer.start({ latencyMs: 20, tokensPerSecond: Number.POSITIVE_INFINITY, seed: SEED });
    cleanups.push(
      () => llm.close(),
      () => referenceLlm.close(),
    );
    const artifactsDir = mkdtempSync(join(tmpdir(), 'troupe-chaos-artifacts-'));
    cleanups.push(async () => rmSync(artifactsDir, { recursive: true, force: true }));

    // The private servers take a minute to start (Cassandra most of it); the reference runs meanwhile.
    const [started, delivered] = await Promise.allSettled([
      startServers(),
      referenceDelivery(referenceLlm.openaiBaseURL, SIZE, RECOVERY_TIMEOUT_MS),
    ]);
    if (started.status === 'fulfilled') {
      const { kafka, cassandra, redis } = started.value;
      cleanups.push(async () => void (await Promise.all([kafka.dispose(), cassandra.dispose(), redis.dispose()])));
    }
    if (started.status === 'rejected') throw started.reason;
    if (delivered.status === 'rejected') throw delivered.reason;
    const [servers, reference] = [started.value, delivered.value];

    const config = new KubeConfig();
    config.loadFromFile(infra().kube.kubeconfig);
    const client = new KubeClient({ config, fieldManager: 'troupe-chaos', maxSockets: 16 });
    const namespace = `chaos-${randomBytes(3).toString('hex')}`;
    await client.create(Namespaces, { metadata: { name: namespace } });
    cleanups.push(async () => {
      await client.delete(Namespaces, '', namespace);
      client.close();
    });
    const company = companyResources(namespace, llm.openaiBaseURL, SIZE);
    await client.create(ModelProviders, company.provider);
    await client.create(Workflows, company.workflow);
    await client.create(AgentPools, company.pool);

    const exits: UnplannedExit[] = [];
    const onUnplannedExit = (exit: UnplannedExit) => exits.push(exit);
    const tokenSecret = randomBytes(32).toString('hex');
    const plannedNodes = await planNodes(NODES);
    const { kafka, cassandra, redis } = servers;
    const operators = new Operators(
      client,
      namespace,
      {
        KUBECONFIG: infra().kube.kubeconfig,
        TROUPE_RUNTIME_ADDRESS: grpcTarget(plannedNodes),
        TROUPE_RUNTIME_TOKEN: new Tokens({ secret: tokenSecret }).sign({ sub: 'chaos-operator', role: 'admin' }),
        TROUPE_KAFKA_BROKERS: kafka.endpoint.brokers.join(','),
        TROUPE_CASSANDRA_CONTACT_POINTS: cassandra.endpoint.contactPoints.join(','),
        TROUPE_CASSANDRA_DATACENTER: cassandra.endpoint.localDataCenter,
        TROUPE_REDIS_URL: redis.endpoint.url,
        // Reconciles at once: a burst of 100 Projects is handed to the runtime within seconds.
        TROUPE_CONCURRENCY: '16',
      },
      onUnplannedExit,
    );
    cleanups.push(() => operators.stop());
    operators.start('operator-a');
    operators.start('operator-b');

    // The nodes run what the operator's Deployment for the pool says, as its pods would.
    const podEnv = await podEnvironment(client, namespace, company.pool.metadata.name, RECOVERY_TIMEOUT_MS);
    const nodes = new RuntimeNodes(plannedNodes, podEnv, { artifactsDir, tokenSecret }, onUnplannedExit);
    cleanups.push(() => nodes.stop());
    const [first, ...others] = nodes.nodes;
    // One node first: it creates the keyspace, the tables and the topics the others then find.
    await nodes.start(first!, RECOVERY_TIMEOUT_MS);
    await Promise.all(others.map((node) => nodes.start(node, RECOVERY_TIMEOUT_MS)));

    const startedAt = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < company.projects.length; i = next++) await client.create(Projects, company.projects[i]!);
      }),
    );
    const listProjects = async (): Promise<Project[]> => (await client.list(Projects, { namespace, limit: 500 })).items;
    const inFlight = async () => {
      const undelivered = (await listProjects()).filter((project) => project.status?.phase !== 'Delivered');
      // Waiting for approval, failed or paused, a project has no work to do.
      const idle: (string | undefined)[] = ['AwaitingApproval', 'Failed', 'Paused'];
      return { undelivered: undelivered.length, working: undelivered.filter((project) => !idle.includes(project.status?.phase)).length };
    };
    // A line now and then, so that a run's log shows how the work went between the faults.
    const progress = setInterval(() => {
      void listProjects().then(
        (projects) => {
          const phases = new Map<string, number>();
          for (const project of projects)
            phases.set(project.status?.phase ?? 'none', (phases.get(project.status?.phase ?? 'none') ?? 0) + 1);
          const { completions, callIds } = llm.stats();
          console.log(
            `chaos: ${((Date.now() - startedAt) / 1000).toFixed(0)} s: ${[...phases].map(([phase, count]) => `${count} ${phase}`).join(', ')}; ` +
              `${completions} LLM calls sold (${callIds} distinct)`,
          );
        },
        () => {},
      );
    }, 20_000);
    cleanups.push(async () => clearInterval(progress));

    // The faults begin once the runtime has taken every project on.
    await eventually(
      async () => {
        const waiting = (await listProjects()).filter((project) => [undefined, 'Pending'].includes(project.status?.phase));
        if (waiting.length > 0) throw new Error(`${waiting.length} projects are not taken on by the runtime`);
      },
      RECOVERY_TIMEOUT_MS,
      500,
    );

    const node = (i: number) => nodes.nodes[i % NODES]!;
    const records: FaultRecord[] = [];
    onTestFailed(async () => {
      const tail = (text: string) => text.split('\n').slice(-15).join('\n');
      const said = [...nodes.nodes.map((running) => [running.name, nodes.transcript(running)] as const), ...operators.transcripts()].map(
        ([name, transcript]) => `--- ${name}:\n${tail(transcript)}`,
      );
      const exited = exits.map((exit) => `${exit.process} exited with ${exit.code} at ${((exit.at - startedAt) / 1000).toFixed(1)} s`);
      console.log(`chaos: the processes' last lines on stderr\n${[...said, ...exited].join('\n')}`);
      const undelivered = (await listProjects().catch(() => []))
        .filter((project) => project.status?.phase !== 'Delivered')
        .map((project) => project.metadata.name);
      const runtime = new GrpcRuntimeClient({
        address: grpcTarget(nodes.nodes),
        token: new Tokens({ secret: tokenSecret }).sign({ sub: 'chaos-evidence', role: 'admin' }),
      });
      try {
        console.log(
          `chaos: every process's whole stderr, killed ones too, each node's metrics, the pools' load and the journals of ` +
            `the projects not delivered: ${await keepEvidence(nodes, operators, { runtime, namespace, undelivered })}`,
        );
      } finally {
        runtime.close();
      }
    });
    try {
      await runFaults(
        { servers, nodes, operators, llm, inFlight, startedAt, recoveryTimeoutMs: RECOVERY_TIMEOUT_MS },
        [
          killNode(node(0)),
          loseRedis(REDIS_OUTAGE_MS),
          restartBroker(),
          killNode(node(1)),
          pauseCassandra(FREEZE_MS),
          killNode(node(2)),
          // Last, so that the approvals below go through the replica that took over.
          killOperatorLeader(),
        ],
        CALLS_BETWEEN_FAULTS,
        (record) => records.push(record),
      );
      // Every fault has struck: the client approves each project's review, as `kubectl annotate project NAME troupe.dev/approve=review` does.
      for (const project of company.projects) {
        await client.patch(
          Projects,
          namespace,
          project.metadata.name,
          { metadata: { annotations: { [APPROVE_ANNOTATION]: GATE } } },
          { strategy: 'merge' },
        );
      }

      let projects: Project[] = [];
      await eventually(
        async () => {
          projects = await listProjects();
          const failed = projects.filter((project) => project.status?.phase === 'Failed');
          // A failed project never recovers: say so now rather than at the deadline.
          if (failed.length > 0) return;
          const pending = projects.filter((project) => project.status?.phase !== 'Delivered');
          if (pending.length > 0)
            throw new Error(
              `${pending.length} projects are not delivered, e.g. ${pending
                .slice(0, 3)
                .map((p) => `${p.metadata.name} ${p.status?.phase} ${p.status?.currentPhase}`)
                .join('; ')}`,
            );
        },
        DELIVERY_TIMEOUT_MS,
        1_000,
      );
      const notDelivered = projects
        .filter((project) => project.status?.phase !== 'Delivered')
        .map(
          (project) =>
            `${project.metadata.name}: ${project.status?.phase} ${JSON.stringify(project.status?.conditions?.filter((c) => c.status === 'True'))}`,
        );
      expect(projects).toHaveLength(SIZE.projects);
      expect(notDelivered, 'projects not Delivered').toEqual([]);
      const deliveredAfter = Date.now() - startedAt;

      const ledger = checkLedger(projects, reference, llm);
      // Artefacts are downloaded as a client downloads them: from a gateway replica, with a token of the tenant.
      const gateway = await planGateway();
      await nodes.start(gateway, RECOVERY_TIMEOUT_MS);
      const artifacts = await checkArtifacts(projects, reference, {
        gateway: gateway.gateway!,
        token: new Tokens({ secret: tokenSecret }).sign({ sub: 'chaos-client', tenant: namespace }),
      });
      console.log(
        [
          `chaos: ${SIZE.projects} projects delivered ${(deliveredAfter / 1000).toFixed(1)} s after they were applied, through ${records.length} faults`,
          `LLM calls: the projects' ledger counts ${ledger.summary.ledger.llmCalls} calls (${ledger.summary.ledger.tokensIn} tokens in, ` +
            `${ledger.summary.ledger.tokensOut} out, $${ledger.summary.ledger.usd.toFixed(4)}); the server sold ${ledger.summary.sold.calls} distinct calls ` +
            `in ${ledger.summary.completions} completions: ${ledger.summary.boughtAgain} bought again (by fault in the table)`,
          `artefacts: ${artifacts.summary} downloaded and checked against the reference's ${reference.artifacts.length} per project`,
          ...exits.map(
            (exit) =>
              `unplanned exit of ${exit.process} (code ${exit.code}) at ${((exit.at - startedAt) / 1000).toFixed(1)} s:\n${exit.stderr}`,
          ),
        ].join('\n'),
      );
      expect(records.filter((record) => record.problem !== undefined).map((record) => `${record.fault}: ${record.problem}`)).toEqual([]);
      expect(ledger.problems).toEqual([]);
      expect(boughtAgain(records, llm, startedAt).problems, 'calls bought twice other than as the journal allows').toEqual([]);
      expect(artifacts.problems).toEqual([]);
      expect(
        exits.map((exit) => `${exit.process} exited with ${exit.code}`),
        'processes that exited without being killed',
      ).toEqual([]);
    } finally {
      console.log(`chaos: the faults injected and their outcomes\n${faultTable(records, boughtAgain(records, llm, startedAt))}`);
    }
  }, 600_000);
});

/** Projects whose journals a failed run keeps: enough to compare a few, few enough to read. */
const JOURNALS_KEPT = 5;

/**
 * Writes into a new directory, kept after the run, every process's stderr, each node's /metrics,
 * every pool replica's load as the runtime lists it, and the exported journals of the first
 * projects not delivered; returns its path.
 */
async function keepEvidence(
  nodes: RuntimeNodes,
  operators: Operators,
  { runtime, namespace, undelivered }: { runtime: GrpcRuntimeClient; namespace: string; undelivered: readonly string[] },
): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-chaos-evidence-'));
  const pools = await runtime.listPools(namespace).then(
    (entries) => JSON.stringify(entries, null, 2),
    (error: unknown) => `no pools: ${String(error)}`,
  );
  writeFileSync(join(dir, 'pools.json'), pools);
  for (const name of undelivered.slice(0, JOURNALS_KEPT)) {
    const journal = await readableArchive(runtime.exportProject(namespace, name)).catch((error: unknown) => `no archive: ${String(error)}`);
    writeFileSync(join(dir, `project-${name}.journal.txt`), journal);
  }
  for (const node of nodes.nodes) {
    writeFileSync(join(dir, `${node.name}.stderr.log`), nodes.transcript(node));
    const metrics = await fetch(`${node.ops}/metrics`, { signal: AbortSignal.timeout(3_000) }).then(
      (response) => response.text(),
      (error: unknown) => `no metrics: ${String(error)}`,
    );
    writeFileSync(join(dir, `${node.name}.metrics.txt`), metrics);
  }
  for (const [identity, transcript] of operators.transcripts()) writeFileSync(join(dir, `${identity}.stderr.log`), transcript);
  return dir;
}

/**
 * A project's archive as text: its status, then each actor's journal — the snapshot and every
 * event after it, one a line, as the actor encoded them (JSON) — leaving out the artefacts' bytes.
 */
async function readableArchive(parts: AsyncIterable<ArchivePart>): Promise<string> {
  const lines: string[] = [];
  const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');
  for await (const { part } of parts) {
    if (part?.$case === 'header')
      lines.push(`status: ${JSON.stringify(ProjectStatus.toJSON(part.value.status ?? ProjectStatus.create()))}`);
    if (part?.$case === 'journal') {
      const { actorType, actorId, seq, snapshot, events } = part.value;
      lines.push(`\n${actorType}/${actorId}: ${seq} events`);
      if (snapshot !== undefined) lines.push(`snapshot at ${snapshot.seq}: ${text(snapshot.state)}`);
      for (const event of events) lines.push(text(event));
    }
  }
  return `${lines.join('\n')}\n`;
}
