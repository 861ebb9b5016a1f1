/**
 * The company: the domain composed on the actor runtime. It starts the Project, index and
 * `llm-call` actors on an ActorSystem, runs agent pools whose replicas take tasks from their
 * pool topics, and serves the RuntimeApi that gRPC, the gateway and the reconcilers use.
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
import { JournaledLlm, llmCallActor } from '../llm/journal.js';
import { ClientLedgers, costLedgerActor } from '../llm/ledger.actor.js';
import { logError } from '../security/redact.js';
import type { Store } from '../store/store.js';
import { actorTracing, traceLlm } from '../tracing/runtime-tracing.js';
import type { Subscription, Transport } from '../transport/transport.js';
import type { ArtifactStore } from './artifacts.js';
import { deliveryActors } from './delivery/delivery.js';
import { DELIVERY_DEFAULTS, type DeliveryOptions } from './delivery/delivery.types.js';
import { invoiceOf } from './delivery/invoice.js';
import { PoolDirectory } from './pool-directory.js';
import { PoolRegistry, type PoolResource } from './pools.js';
import { approvalTimeoutMs, projectActor, type ProjectActorOptions } from './project.actor.js';
import { EVENTS_TOPIC } from './project-events.js';
import type { ApproveReply, Deliverable, ProjectSpec } from './project.types.js';
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
  /** How often a project dispatches its running tasks again, in case their replica died (default 30 s). */
  taskCheckMs: number;
  /** Agent worker threads per pool (default 1). */
  poolThreads: number;
  onError: (error: Error) => void;
  /** Told of the actor system's turns and partitions, for metrics (default: nobody). */
  observer: ActorSystemObserver;
  /** Webhooks, emails and git pushes of projects that ask for them; without it, none are made. */
  delivery?: Pick<DeliveryOptions, 'webhooks' | 'git' | 'secrets'> & Partial<DeliveryOptions>;
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
type Hosting = 'store' | 'observer' | 'delivery';

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

/** The durable cost ledger: an actor per client, told of each purchase by the `llm-call` journal. */
const costLedger = costLedgerActor();

/**
 * @example
 * const company = await Company.start({ transport, store, llm, budgets, artifacts });
 * await company.applyPool({ namespace: 'acme', name: 'developers', replicas: 2, spec });
 * await company.submitProject('cmd-1', { namespace: 'acme', name: 'shop', uid, generation: 1, spec });
 */
export class Company implements RuntimeApi {
  readonly options: Omit<CompanyOptions, Hosting | 'llm' | 'budgets'>;
  /** Every agent pool of the company, here and on other nodes. */
  readonly directory: PoolDirectory;
  /** The durable cost ledger of every client, which invoices are made from; read from any node. */
  readonly ledger: ClientLedgers;
  /** The agent pools this process runs; none where no LLM was given. */
  private pools: PoolRegistry | undefined;
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
    options: Omit<CompanyOptions, Hosting | 'llm' | 'budgets'>,
    actors: { system: Actors; stop: () => Promise<void> },
    project: ReturnType<typeof projectActor>,
    directory: PoolDirectory,
  ) {
    this.options = options;
    this.system = actors.system;
    this.ledger = new ClientLedgers(actors.system, costLedger);
    this.stopActors = actors.stop;
    this.project = project;
    this.directory = directory;
  }

  static async start(options: Pick<CompanyOptions, Required> & Partial<CompanyOptions>): Promise<Company> {
    const resolved: CompanyOptions = { ...COMPANY_DEFAULTS, ...options };
    const llmCall = llmCallActor({ ledger: costLedger });
    const delivery =
      resolved.delivery === undefined
        ? undefined
        : deliveryActors({ ...DELIVERY_DEFAULTS, ...resolved.delivery }, resolved.artifacts, resolved.onError);
    let company: Company | undefined;
    const directory = new PoolDirectory({ local: () => company?.pools?.list() ?? [] });
    const project = projectActorOf(resolved, directory, delivery?.onPublished);
    await resolved.transport.createTopic(EVENTS_TOPIC, resolved.partitions);
    const system = await ActorSystem.start({
      transport: resolved.transport,
      store: resolved.store,
      actors: [project, projectIndex, llmCall, costLedger, ...(delivery?.actors ?? [])],
      partitions: resolved.partitions,
      groupId: resolved.groupId,
      nodeId: resolved.nodeId,
      onError: resolved.onError,
      observer: resolved.observer,
      tracer: actorTracing,
    });
    company = new Company(resolved, { system, stop: () => system.stop() }, project, directory);
    company.pools = company.hostPools(resolved, system, llmCall);
    company.backup = new ProjectBackup({
      store: resolved.store,
      artifacts: resolved.artifacts,
      ledger: company.ledger,
      project,
      llmCall,
      pools: (namespace) => directory.list(namespace),
      restored: (key, archive) => (company as Company).restored(key, archive),
      listed: (key) => (company as Company).listed(key),
    });
    await company.listen();
    return company;
  }

  /**
   * A Company that runs no actors, for a process that reaches the runtime nodes' actors through
   * the transport and learns of state changes from `troupe.events`. With `llm` and `budgets` it
   * is a pool replica: it runs the agent pools it is given (`applyPool`), whose tasks come from
   * their pool topics. Without them it only serves the API (a gateway replica): `applyPool` and
   * `scalePool` fail there.
   *
   * @example
   * const company = await Company.connect({ transport, artifacts, nodeId: 'gateway-0' });
   */
  static async connect(
    options: Pick<CompanyOptions, 'transport' | 'artifacts'> & Partial<Omit<CompanyOptions, Hosting>>,
  ): Promise<Company> {
    const resolved = { ...COMPANY_DEFAULTS, ...options };
    let company: Company | undefined;
    const directory = new PoolDirectory({ local: () => company?.pools?.list() ?? [] });
    // Only the project's address is used here: its turns run on the runtime nodes.
    const project = projectActorOf(resolved, directory);
    await resolved.transport.createTopic(EVENTS_TOPIC, resolved.partitions);
    const client = new ActorClient(resolved.transport, { clientId: resolved.nodeId, groupId: resolved.groupId, tracing: actorTracing });
    company = new Company(resolved, { system: client, stop: () => client.close() }, project, directory);
    if (resolved.llm !== undefined && resolved.budgets !== undefined) {
      company.pools = company.hostPools({ ...resolved, llm: resolved.llm, budgets: resolved.budgets }, client, llmCallActor());
    }
    await company.listen();
    return company;
  }

  /** Creates or updates an agent pool (what the AgentPool reconciler does on this node). */
  applyPool(resource: PoolResource): Promise<void> {
    return this.localPools().apply(resource);
  }

  /** Stops and forgets an agent pool of this node. */
  removePool(namespace: string, name: string): Promise<void> {
    return this.localPools().remove(namespace, name);
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
    this.localPools().scale(command.namespace, command.pool, command.replicas);
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
    return this.directory.list(namespace);
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
    // By the sha256 the status records, so that a node with no artefact catalog (a gateway) reads it too.
    const bytes = await this.options.artifacts.read(namespace, project, ref);
    return bytes === undefined ? undefined : { name: ref.name, kind: ref.kind, sha256: ref.sha256, bytes };
  }

  async invoice(client: string, namespace?: string): Promise<Invoice> {
    return invoiceOf(this.ledger, client, namespace, Date.now());
  }

  exportProject(namespace: string, name: string): AsyncIterable<ArchivePart> {
    return this.backups().export(namespace, name);
  }

  importProject(requests: AsyncIterable<ImportProjectRequest>): Promise<ImportProjectResponse> {
    return this.backups().import(requests);
  }

  async stop(): Promise<void> {
    await this.events?.close();
    // Pools first: a task that finishes while they stop can still tell its project.
    await this.pools?.close();
    await this.stopActors();
  }

  /** The agent pools of this process, replicas of their AgentPools, with the LLM through the journal. */
  private hostPools(
    options: Pick<CompanyOptions, 'transport' | 'nodeId' | 'partitions' | 'artifacts' | 'budgets' | 'llm' | 'poolThreads' | 'onError'>,
    actors: Actors,
    llmCall: ReturnType<typeof llmCallActor>,
  ): PoolRegistry {
    // Traced above the journal: its turns, and the purchase, are the call's children.
    const journaled = traceLlm(new JournaledLlm(actors, llmCall, options.llm, { node: options.nodeId, onError: options.onError }));
    return new PoolRegistry({
      transport: options.transport,
      nodeId: options.nodeId,
      partitions: options.partitions,
      artifacts: options.artifacts,
      budgets: options.budgets,
      create: (name: string, spec: AgentPoolSpec) => new AgentPool({ name, spec, llm: journaled, threads: options.poolThreads }),
      report: (key, outcome, id) => actors.tell(this.project, key, outcome, { id }),
      onError: options.onError,
    });
  }

  private localPools(): PoolRegistry {
    if (this.pools === undefined)
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `node ${this.options.nodeId} runs no agent pools`);
    return this.pools;
  }

  private backups(): ProjectBackup {
    if (this.backup === undefined)
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `node ${this.options.nodeId} runs no actors: export and import projects on a runtime node`,
      );
    return this.backup;
  }

  /**
   * Runs again the tasks a restored project was running (their runs stayed behind in the runtime
   * it came from), then lists it: listed, its import is over.
   */
  private async restored(key: string, archive: string): Promise<void> {
    await this.system.tell(this.project, key, { type: 'check-tasks' }, { id: `import/${key}/${archive}/resume` });
    await this.system.tell(projectIndex, 'all', { type: 'add', key }, { id: `import/${key}/${archive}/index` });
  }

  /** Whether the project is in the listings. */
  private async listed(key: string): Promise<boolean> {
    return ((await this.system.ask(projectIndex, 'all', { type: 'list' })) as string[]).includes(key);
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
          if (event.event?.$case === 'poolStatus') {
            // This node's own pools are in the directory already.
            const status = event.event.value;
            if (status.replica !== this.options.nodeId) this.directory.report(event.namespace, status, event.occurredAt);
            continue;
          }
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

/** The project actor type, dispatching tasks to the pools `directory` knows. */
function projectActorOf(
  options: Pick<CompanyOptions, 'taskCheckMs'>,
  directory: PoolDirectory,
  onPublished?: ProjectActorOptions['onPublished'],
) {
  return projectActor({ pools: directory, taskCheckMs: options.taskCheckMs, ...(onPublished === undefined ? {} : { onPublished }) });
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
    ...approvalTimeout(spec.approvalTimeout),
    priority: spec.priority ?? 50,
    ...(spec.deadline === undefined ? {} : { deadline: spec.deadline }),
    suspend: spec.suspend,
    ...deliverySpec(spec),
  };
}

/** spec.approvalTimeout when it is set: hours, minutes and seconds, more than none. */
function approvalTimeout(text: string): Pick<ProjectSpec, 'approvalTimeout'> {
  if (text === '') return {};
  if (approvalTimeoutMs(text) === undefined) {
    throw new RuntimeError(
      RuntimeErrorCode.InvalidArgument,
      `spec.approvalTimeout must be hours, minutes and seconds such as 30m, 24h or 1h30m, longer than none, got ${JSON.stringify(text.slice(0, 40))}`,
    );
  }
  return { approvalTimeout: text };
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
