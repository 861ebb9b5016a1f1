/**
 * The company: the domain composed on the actor runtime. It starts the Project, index and task
 * runner actors and the journaled LLM pools on an ActorSystem, and serves the RuntimeApi that
 * gRPC, the gateway and the reconcilers use.
 */
import { hostname } from 'node:os';
import {
  BudgetAction,
  Deliverable as DeliverableCode,
  Event,
  type Approve,
  type ArchivePart,
  type CancelProject,
  type ImportProjectRequest,
  type ImportProjectResponse,
  type PoolEntry,
  type ProjectSummary,
  type ScalePool,
  type SubmitProject,
  type WorkflowPhase,
} from '@troupe/proto';
import { defineActor } from '../actors/actor.js';
import { ActorClient } from '../actors/actor-client.js';
import { ActorSystem, type ActorSystemObserver } from '../actors/actor-system.js';
import type { ArtifactContent, Invoice, RuntimeApi, StopWatching, WatchFilter } from '../api/runtime-api.js';
import { ProjectBackup } from '../backup/project-backup.js';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { AgentPool, type AgentPoolSpec } from '../llm/agent-pool.js';
import { Budgets } from '../llm/budget.js';
import type { LlmCaller } from '../llm/client.js';
import type { CostLedger } from '../llm/ledger.js';
import { JournaledLlm, llmCallActor } from '../llm/journal.js';
import { logError } from '../security/redact.js';
import type { Store } from '../store/store.js';
import { actorTracing, traceLlm } from '../tracing/runtime-tracing.js';
import type { Subscription, Transport } from '../transport/transport.js';
import type { ArtifactStore } from './artifacts.js';
import { deliveryActors } from './delivery/delivery.js';
import { DELIVERY_DEFAULTS, type DeliveryOptions } from './delivery/delivery.types.js';
import { invoiceOf } from './delivery/invoice.js';
import { PoolRegistry, type PoolResource } from './pools.js';
import { projectActor, type ProjectActorOptions } from './project.actor.js';
import { EVENTS_TOPIC } from './project-events.js';
import type { ApproveReply, Deliverable, ProjectSpec } from './project.types.js';
import { taskRunnerActor } from './task-runner.js';
import { definedWorkflow, type PhaseDefinition } from './workflow.js';

export interface CompanyOptions {
  transport: Transport;
  store: Store;
  /** Who buys LLM calls (an LlmClient); every call goes through the journal first. */
  llm: LlmCaller;
  budgets: Budgets;
  artifacts: ArtifactStore;
  /** This node's name, stable across restarts (default: the hostname). */
  nodeId: string;
  /** The consumer group of the runtime nodes (default `troupe.runtime`). */
  groupId: string;
  /** Partitions of each actor topic and of `troupe.events` (default 16). */
  partitions: number;
  /** How often a project checks its running tasks are alive (default 30 s). */
  taskCheckMs: number;
  /** Agent worker threads per pool (default 1). */
  poolThreads: number;
  onError: (error: Error) => void;
  /** Told of the actor system's turns and partitions, for metrics (default: nobody). */
  observer: ActorSystemObserver;
  /** Webhooks, emails and git pushes of projects that ask for them; without it, none are made. */
  delivery?: Pick<DeliveryOptions, 'webhooks' | 'git' | 'secrets'> & Partial<DeliveryOptions>;
  /** The ledger the LLM client records in, which invoices are made from; without it, `invoice` fails. */
  ledger?: CostLedger;
}

export const COMPANY_DEFAULTS = {
  nodeId: hostname(),
  groupId: 'troupe.runtime',
  partitions: 16,
  taskCheckMs: 30_000,
  poolThreads: 1,
  onError: logError('troupe'),
  observer: {},
} as const satisfies Partial<CompanyOptions>;

type Required = 'transport' | 'store' | 'llm' | 'budgets' | 'artifacts';

/** What only a Company that runs the actors needs. */
type Hosting = 'store' | 'llm' | 'budgets' | 'poolThreads' | 'observer' | 'delivery';

/** How the API reaches the actors: this node's ActorSystem, or an ActorClient where none run. */
type Actors = Pick<ActorClient, 'tell' | 'ask'>;

const DELIVERABLES: Readonly<Record<number, Deliverable>> = {
  [DeliverableCode.REQUIREMENTS]: 'requirements',
  [DeliverableCode.ARCHITECTURE]: 'architecture',
  [DeliverableCode.CODE]: 'code',
  [DeliverableCode.TESTS]: 'tests',
  [DeliverableCode.DOCS]: 'docs',
  [DeliverableCode.DEPLOYMENT]: 'deployment',
};

/** What a project delivers when its spec names nothing: everything but deployment. */
const DEFAULT_DELIVERABLES: readonly Deliverable[] = ['requirements', 'architecture', 'code', 'tests', 'docs'];

/** Keeps the names of every project, so listings need no scan of the store. */
const projectIndex = defineActor<string[], { type: 'add'; key: string } | { type: 'list' }, { added: string }, string[]>({
  type: 'project-index',
  initialState: () => [],
  receive(ctx, message) {
    if (message.type === 'add' && !ctx.state.includes(message.key)) ctx.emit({ added: message.key });
    return ctx.state;
  },
  apply: (keys, event) => [...keys, event.added],
});

/**
 * @example
 * const company = await Company.start({ transport, store, llm, budgets, artifacts });
 * await company.applyPool({ namespace: 'acme', name: 'developers', replicas: 2, spec });
 * await company.submitProject('cmd-1', { namespace: 'acme', name: 'shop', uid, generation: 1, spec });
 */
export class Company implements RuntimeApi {
  readonly options: Omit<CompanyOptions, Hosting>;
  readonly pools: PoolRegistry;
  private readonly system: Actors;
  private readonly stopActors: () => Promise<void>;
  private readonly project: ReturnType<typeof projectActor>;
  private readonly watchers = new Set<{ filter: WatchFilter; onEvent: (event: Event) => void }>();
  /** The last sequence handed to watchers per project: a re-sent event is not handed out again. */
  private readonly delivered = new Map<string, number>();
  private events: Subscription | undefined;
  /** Exports and imports projects; only where the actors run and their store is at hand. */
  private backup: ProjectBackup | undefined;

  private constructor(
    options: Omit<CompanyOptions, Hosting>,
    actors: { system: Actors; stop: () => Promise<void> },
    project: ReturnType<typeof projectActor>,
    pools: PoolRegistry,
  ) {
    this.options = options;
    this.system = actors.system;
    this.stopActors = actors.stop;
    this.project = project;
    this.pools = pools;
  }

  static async start(options: Pick<CompanyOptions, Required> & Partial<CompanyOptions>): Promise<Company> {
    const resolved: CompanyOptions = { ...COMPANY_DEFAULTS, ...options };
    const running = new Set<string>();
    const llmCall = llmCallActor();
    let pools: PoolRegistry | undefined;
    const delivery =
      resolved.delivery === undefined
        ? undefined
        : deliveryActors({ ...DELIVERY_DEFAULTS, ...resolved.delivery }, resolved.artifacts, resolved.onError);
    const { project, runner } = actorTypes(resolved, resolved.budgets, () => pools as PoolRegistry, running, delivery?.onPublished);
    await resolved.transport.createTopic(EVENTS_TOPIC, resolved.partitions);
    const system = await ActorSystem.start({
      transport: resolved.transport,
      store: resolved.store,
      actors: [project, projectIndex, runner, llmCall, ...(delivery?.actors ?? [])],
      partitions: resolved.partitions,
      groupId: resolved.groupId,
      nodeId: resolved.nodeId,
      onError: resolved.onError,
      observer: resolved.observer,
      tracer: actorTracing,
    });
    // Traced above the journal: its turns, and the purchase, are the call's children.
    const journaled = traceLlm(new JournaledLlm(system, llmCall, resolved.llm, { node: resolved.nodeId, onError: resolved.onError }));
    pools = new PoolRegistry(
      (name: string, spec: AgentPoolSpec) => new AgentPool({ name, spec, llm: journaled, threads: resolved.poolThreads }),
    );
    const company = new Company(resolved, { system, stop: () => system.stop() }, project, pools);
    company.backup = new ProjectBackup({
      store: resolved.store,
      artifacts: resolved.artifacts,
      ledger: resolved.ledger,
      project,
      llmCall,
      pools: (namespace) => company.pools.list(namespace),
      restored: (key, archive) => company.restored(key, archive),
    });
    await company.listen();
    return company;
  }

  /**
   * A Company that runs no actors and no agent pools, for a process that only serves the API
   * (a gateway replica): commands and questions reach the project actors of the runtime nodes
   * through the transport, and state changes come from `troupe.events`. `applyPool` and
   * `scalePool` fail here, and `listPools` is empty.
   *
   * @example
   * const company = await Company.connect({ transport, artifacts, nodeId: 'gateway-0' });
   */
  static async connect(
    options: Pick<CompanyOptions, 'transport' | 'artifacts'> & Partial<Omit<CompanyOptions, Hosting>>,
  ): Promise<Company> {
    const resolved = { ...COMPANY_DEFAULTS, ...options };
    const pools = new PoolRegistry(() => {
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `node ${resolved.nodeId} runs no actors and so no agent pools`);
    });
    // Only the project's address is used: its turns, and so its runner's, run on the runtime nodes.
    const { project } = actorTypes(resolved, new Budgets(), () => pools, new Set());
    await resolved.transport.createTopic(EVENTS_TOPIC, resolved.partitions);
    const client = new ActorClient(resolved.transport, { clientId: resolved.nodeId, groupId: resolved.groupId, tracing: actorTracing });
    const company = new Company(resolved, { system: client, stop: () => client.close() }, project, pools);
    await company.listen();
    return company;
  }

  /** Creates or updates an agent pool (what the AgentPool reconciler does on this node). */
  applyPool(resource: PoolResource): Promise<void> {
    return this.pools.apply(resource);
  }

  async submitProject(commandId: string, command: SubmitProject): Promise<void> {
    const spec = projectSpec(command);
    const phases = command.workflowPhases.length > 0 ? definedWorkflow(command.workflowPhases.map(phaseDefinition)) : undefined;
    const key = `${command.namespace}/${command.name}`;
    await this.system.tell(projectIndex, 'all', { type: 'add', key }, { id: `${commandId}/index` });
    await this.system.tell(
      this.project,
      key,
      {
        type: 'submit',
        namespace: command.namespace,
        name: command.name,
        uid: command.uid,
        generation: command.generation,
        spec,
        ...(phases === undefined ? {} : { phases }),
      },
      { id: commandId },
    );
  }

  async cancelProject(commandId: string, command: CancelProject): Promise<void> {
    await this.system.tell(
      this.project,
      `${command.namespace}/${command.name}`,
      { type: 'cancel', reason: command.reason },
      { id: commandId },
    );
  }

  async approve(_commandId: string, command: Approve): Promise<void> {
    const reply = (await this.system.ask(this.project, `${command.namespace}/${command.name}`, {
      type: 'approve',
      phase: command.phase,
      by: command.approvedBy,
    })) as ApproveReply;
    if (!reply.ok) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, reply.message);
  }

  async scalePool(_commandId: string, command: ScalePool): Promise<void> {
    if (!Number.isInteger(command.replicas) || command.replicas < 0 || command.replicas > 1000) {
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `replicas must be an integer in 0..1000, got ${command.replicas}`);
    }
    this.pools.scale(command.namespace, command.pool, command.replicas);
  }

  async getProject(namespace: string, name: string): Promise<ProjectSummary | undefined> {
    return (await this.system.ask(this.project, `${namespace}/${name}`, { type: 'get' })) as ProjectSummary | undefined;
  }

  async listProjects(namespace?: string): Promise<ProjectSummary[]> {
    const keys = (await this.system.ask(projectIndex, 'all', { type: 'list' })) as string[];
    const wanted = keys.filter((key) => namespace === undefined || key.startsWith(`${namespace}/`));
    const summaries = await Promise.all(
      wanted.map((key) => {
        const [ns = '', name = ''] = key.split('/');
        return this.getProject(ns, name);
      }),
    );
    return summaries.filter((summary): summary is ProjectSummary => summary !== undefined);
  }

  async listPools(namespace?: string): Promise<PoolEntry[]> {
    return this.pools.list(namespace);
  }

  async watch(filter: WatchFilter, onEvent: (event: Event) => void): Promise<StopWatching> {
    const watcher = { filter, onEvent };
    this.watchers.add(watcher);
    return async () => void this.watchers.delete(watcher);
  }

  async artifact(namespace: string, project: string, name: string): Promise<ArtifactContent | undefined> {
    const summary = await this.getProject(namespace, project);
    const ref = summary?.status?.artifacts.find((artifact) => artifact.name === name);
    if (ref === undefined) return undefined;
    const bytes = await this.options.artifacts.get(namespace, project, name);
    return bytes === undefined ? undefined : { name: ref.name, kind: ref.kind, sha256: ref.sha256, bytes };
  }

  async invoice(client: string, namespace?: string): Promise<Invoice> {
    const { ledger } = this.options;
    if (ledger === undefined) {
      throw new RuntimeError(
        RuntimeErrorCode.Unavailable,
        `node ${this.options.nodeId} keeps no cost ledger; ask a runtime node for invoices`,
      );
    }
    return invoiceOf(ledger, client, namespace, Date.now());
  }

  exportProject(namespace: string, name: string): AsyncIterable<ArchivePart> {
    return this.backups().export(namespace, name);
  }

  importProject(requests: AsyncIterable<ImportProjectRequest>): Promise<ImportProjectResponse> {
    return this.backups().import(requests);
  }

  async stop(): Promise<void> {
    await this.events?.close();
    await this.stopActors();
    await this.pools.close();
  }

  private backups(): ProjectBackup {
    if (this.backup === undefined)
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `node ${this.options.nodeId} runs no actors: export and import projects on a runtime node`,
      );
    return this.backup;
  }

  /** Lists a restored project and runs again the tasks it was running: their runs stayed behind in the runtime it came from. */
  private async restored(key: string, archive: string): Promise<void> {
    await this.system.tell(projectIndex, 'all', { type: 'add', key }, { id: `import/${key}/${archive}/index` });
    await this.system.tell(this.project, key, { type: 'check-tasks' }, { id: `import/${key}/${archive}/resume` });
  }

  /** Reads `troupe.events` from its end and hands each event to the watchers it matches. */
  private async listen(): Promise<void> {
    this.events = await this.options.transport.subscribe({
      groupId: `${this.options.groupId}.events.${this.options.nodeId}`,
      topics: [EVENTS_TOPIC],
      start: 'latest',
      eachBatch: async (batch) => {
        for (const record of batch.records) {
          batch.resolveOffset(record.offset);
          const event = Event.decode(record.value);
          const key = `${event.namespace}/${event.project}`;
          if (event.sequence <= (this.delivered.get(key) ?? 0)) continue;
          this.delivered.set(key, event.sequence);
          for (const watcher of this.watchers) {
            const { namespace, project } = watcher.filter;
            if ((namespace === undefined || namespace === event.namespace) && (project === undefined || project === event.project)) {
              try {
                watcher.onEvent(event);
              } catch (error) {
                this.options.onError(toError(error));
              }
            }
          }
        }
      },
    });
  }
}

/** The project and task runner actor types; they refer to each other, and the runner finds its pools through `pools`. */
function actorTypes(
  options: Pick<CompanyOptions, 'artifacts' | 'taskCheckMs' | 'onError'>,
  budgets: Budgets,
  pools: () => PoolRegistry,
  running: Set<string>,
  onPublished?: ProjectActorOptions['onPublished'],
) {
  let project: ReturnType<typeof projectActor> | undefined;
  const runner = taskRunnerActor({
    pools: { resolve: (...args) => pools().resolve(...args) } as PoolRegistry,
    artifacts: options.artifacts,
    budgets,
    project: () => project as NonNullable<typeof project>,
    running,
    onError: options.onError,
  });
  project = projectActor({
    runner,
    isRunning: (key) => running.has(key),
    taskCheckMs: options.taskCheckMs,
    ...(onPublished === undefined ? {} : { onPublished }),
  });
  return { project, runner };
}

/** The domain's spec from a SubmitProject command, with the CRD's defaults. */
function projectSpec(command: SubmitProject): ProjectSpec {
  const spec = command.spec;
  if (spec === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'SubmitProject has no spec');
  const budget = spec.budget;
  if (budget === undefined || !(budget.maxCostUsd > 0)) {
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'spec.budget.maxCostUSD must be a number > 0');
  }
  if (spec.brief.length === 0 || spec.brief.length > 20_000) {
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `spec.brief must be 1..20000 characters, got ${spec.brief.length}`);
  }
  const deliverables = spec.deliverables.length > 0 ? spec.deliverables.map(deliverable) : [...DEFAULT_DELIVERABLES];
  return {
    client: spec.client,
    brief: spec.brief,
    workflow: spec.workflow || 'software-delivery',
    deliverables,
    budget: {
      maxCostUSD: budget.maxCostUsd,
      ...(budget.maxTokens === undefined ? {} : { maxTokens: budget.maxTokens }),
      onExceeded: budget.onExceeded === BudgetAction.FAIL ? 'Fail' : 'Pause',
    },
    pools: spec.pools,
    approvals: spec.approvals,
    priority: spec.priority ?? 50,
    ...(spec.deadline === undefined ? {} : { deadline: spec.deadline }),
    suspend: spec.suspend,
    ...deliverySpec(spec),
  };
}

/** spec.delivery and spec.notify; Secrets by name only, their values stay where they are. */
function deliverySpec(spec: NonNullable<SubmitProject['spec']>): Pick<ProjectSpec, 'delivery' | 'notify'> {
  const git = spec.delivery?.git;
  const secret = (ref: { name: string } | undefined) => (ref === undefined || ref.name === '' ? {} : { secretRef: { name: ref.name } });
  if (git !== undefined && git.url === '')
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'spec.delivery.git.url must not be empty');
  const notify = spec.notify;
  for (const hook of notify?.webhooks ?? []) {
    if (!/^https?:\/\/[^/\s]+/.test(hook.url)) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidArgument,
        `spec.notify.webhooks[].url must be an absolute http or https URL, got ${JSON.stringify(hook.url)}`,
      );
    }
  }
  return {
    ...(git === undefined ? {} : { delivery: { git: { url: git.url, branch: git.branch, ...secret(git.secretRef) } } }),
    ...(notify === undefined
      ? {}
      : { notify: { webhooks: notify.webhooks.map((hook) => ({ url: hook.url, ...secret(hook.secretRef) })), email: [...notify.email] } }),
  };
}

function phaseDefinition(phase: WorkflowPhase): PhaseDefinition {
  return {
    name: phase.name,
    role: phase.role,
    needs: phase.needs,
    produces: phase.produces,
    fanOut: phase.fanOut,
    approval: phase.approval,
    ...(phase.loop === undefined ? {} : { loop: { backTo: phase.loop.backTo, maxIterations: phase.loop.maxIterations } }),
  };
}

function deliverable(code: number): Deliverable {
  const name = DELIVERABLES[code];
  if (name === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `spec.deliverables has an unknown deliverable ${code}`);
  return name;
}
