/**
 * The gateway's live picture of the company: one watch on the runtime for every namespace,
 * folded into project cards and details, pools and cost rows, each change published to the
 * topics that show it. Seeded from the runtime's listings; history (tasks, activity, the cost
 * series) is what the gateway has seen since it started, bounded per project.
 */
import type { Event, PoolEntry, ProjectSummary } from '@troupe/proto';
import type { RuntimeApi, StopWatching } from '../api/runtime-api.js';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { ALL_NAMESPACES, type Topic } from './access.js';
import type {
  ActivityItem,
  ArtifactView,
  CostPoint,
  CostRow,
  CostView,
  PoolView,
  ProjectCard,
  ProjectDelta,
  ProjectDetail,
  SnapshotMap,
  TaskView,
  TimelineStep,
  TopicKind,
} from './protocol.js';
import type { TopicHub } from './topic-hub.js';
import { artifactView, costView, phaseName, poolChanged, poolView, progressView, projectCard, taskStatusName } from './views.js';

export interface LiveStateOptions {
  api: RuntimeApi;
  hub: Pick<TopicHub, 'publish'>;
  /** Activity items kept per project. */
  activityLimit: number;
  /** Points of a project's cost series; a longer series is thinned to half. */
  costPoints: number;
  /** How often pool gauges are sampled from the runtime (0: only PoolStatus events). */
  poolSampleMs: number;
  /** Unix ms. */
  now: () => number;
  onError: (error: Error) => void;
}

interface ProjectState {
  card: ProjectCard;
  /** Sequence of the last event folded in; older and repeated events are dropped. */
  lastSequence: number;
  timeline: TimelineStep[];
  tasks: Map<string, TaskView>;
  artifacts: Map<string, ArtifactView>;
  activity: ActivityItem[];
  costSeries: CostPoint[];
  /** The runtime has been asked for what events do not carry (client, priority). */
  described: boolean;
}

const PHASE_LABELS: Record<ProjectCard['phase'], string> = {
  Pending: 'Pending',
  Planning: 'Planning',
  Running: 'Running',
  AwaitingApproval: 'Awaiting approval',
  Paused: 'Paused',
  Delivered: 'Delivered',
  Failed: 'Failed',
  Unknown: 'Unknown',
};

/** Folds the runtime's events into what the dashboard shows, and publishes each change. */
export class LiveState {
  private readonly projects = new Map<string, ProjectState>();
  private readonly pools = new Map<string, PoolView>();
  private readonly poolSequences = new Map<string, number>();
  private readonly costs = new Map<string, CostRow>();
  private stopWatching: StopWatching | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private sampling = false;
  private sampleAgain = false;

  private constructor(private readonly options: LiveStateOptions) {}

  /** Watches the runtime, then seeds from its listings; events that raced the seed are folded after it. */
  static async start(options: LiveStateOptions): Promise<LiveState> {
    const live = new LiveState(options);
    const early: Event[] = [];
    let seeded = false;
    live.stopWatching = await options.api.watch({}, (event) => {
      if (seeded) live.apply(event);
      else early.push(event);
    });
    try {
      const [projects, pools] = await Promise.all([options.api.listProjects(), options.api.listPools()]);
      for (const summary of projects) live.seedProject(summary);
      for (const entry of pools) live.pools.set(`${entry.namespace}/${entry.status?.pool ?? ''}`, poolView(entry, options.now()));
    } catch (error) {
      await live.stop();
      throw error;
    }
    seeded = true;
    for (const event of early) live.apply(event);
    if (options.poolSampleMs > 0) live.sampler = setInterval(() => void live.samplePools(), options.poolSampleMs).unref();
    return live;
  }

  /** Folds one runtime event in and publishes what it changed. */
  apply(event: Event): void {
    const body = event.event;
    if (body === undefined) return;
    const at = event.occurredAt > 0 ? event.occurredAt : this.options.now();
    if (body.$case === 'poolStatus') {
      const key = `${event.namespace}/${body.value.pool}`;
      if (event.sequence <= (this.poolSequences.get(key) ?? 0)) return;
      this.poolSequences.set(key, event.sequence);
      this.upsertPool(poolView({ namespace: event.namespace, status: body.value }, at));
      return;
    }
    if (event.project === '') return;
    const state = this.projectState(event.namespace, event.project);
    if (event.sequence <= state.lastSequence) return;
    state.lastSequence = event.sequence;
    const card = state.card;
    card.updatedAt = at;
    const delta: ProjectDelta = { card, activity: null };
    const activity = (kind: ActivityItem['kind'], tone: ActivityItem['tone'], text: string) => {
      delta.activity = { id: event.id, at, kind, tone, text };
      state.activity.push(delta.activity);
      if (state.activity.length > this.options.activityLimit) state.activity.splice(0, state.activity.length - this.options.activityLimit);
    };

    switch (body.$case) {
      case 'projectPhaseChanged': {
        const change = body.value;
        card.phase = phaseName(change.phase);
        card.currentPhase = change.currentPhase;
        if (card.phase !== 'AwaitingApproval') card.awaitingApproval = null;
        if (card.phase === 'Running' && card.startedAt === null) card.startedAt = at;
        delta.timeline = this.advanceTimeline(state, at);
        const where = change.currentPhase === '' ? '' : ` · ${change.currentPhase}`;
        const tone = card.phase === 'Failed' ? 'bad' : card.phase === 'Delivered' ? 'good' : card.phase === 'Paused' ? 'warn' : 'info';
        activity('phase', tone, `${PHASE_LABELS[card.phase]}${where}${change.message === '' ? '' : ` — ${change.message}`}`);
        break;
      }
      case 'taskStateChanged': {
        const change = body.value;
        const task: TaskView = {
          id: change.taskId,
          title: change.title,
          phase: change.phase,
          role: change.role,
          pool: change.pool,
          status: taskStatusName(change.state),
          attempt: change.attempt,
          error: change.errorMessage === '' ? null : change.errorMessage,
          updatedAt: at,
        };
        state.tasks.set(task.id, task);
        delta.task = task;
        if (change.progress !== undefined) card.progress = progressView(change.progress);
        const tone = task.status === 'Failed' ? 'bad' : task.status === 'Succeeded' ? 'good' : 'info';
        const attempt = task.attempt > 1 ? ` (attempt ${task.attempt})` : '';
        activity(
          'task',
          tone,
          `${task.role || 'agent'}: “${task.title}” ${task.status.toLowerCase()}${attempt}${task.error === null ? '' : ` — ${task.error}`}`,
        );
        break;
      }
      case 'artifactStored': {
        const artifact = artifactView(event.namespace, event.project, body.value);
        state.artifacts.set(artifact.name, artifact);
        delta.artifact = artifact;
        activity('artifact', 'info', `stored ${artifact.name} (${artifact.kind}, ${artifact.bytes.toLocaleString('en-US')} bytes)`);
        break;
      }
      case 'costRecorded': {
        const spend = body.value;
        if (spend.total !== undefined) card.cost = costView(spend.total);
        const point = { at, usd: card.cost.usd };
        state.costSeries.push(point);
        if (state.costSeries.length > this.options.costPoints) state.costSeries = state.costSeries.filter((_, i) => i % 2 === 1);
        delta.costPoint = point;
        this.addCost(card, spend.role, spend.model, spend);
        break;
      }
      case 'approvalRequested': {
        card.awaitingApproval = body.value.phase;
        delta.timeline = this.advanceTimeline(state, at);
        activity('approval', 'warn', `waiting for approval of ${body.value.phase}`);
        break;
      }
      case 'projectDelivered': {
        card.phase = 'Delivered';
        card.completedAt = at;
        card.progress = { ...card.progress, percent: 100 };
        if (body.value.cost !== undefined) card.cost = costView(body.value.cost);
        for (const artifact of body.value.artifacts)
          state.artifacts.set(artifact.name, artifactView(event.namespace, event.project, artifact));
        delta.timeline = this.advanceTimeline(state, at);
        activity('delivered', 'good', `delivered ${body.value.artifacts.length} artefact${body.value.artifacts.length === 1 ? '' : 's'}`);
        break;
      }
      case 'projectFailed': {
        card.phase = 'Failed';
        card.completedAt = at;
        card.failure = `${body.value.reason}: ${body.value.message}`;
        delta.timeline = this.advanceTimeline(state, at);
        activity('failed', 'bad', `failed: ${body.value.reason} — ${body.value.message}`);
        break;
      }
    }
    this.publishProject(state, delta);
  }

  /** The state a topic's snapshot carries. Throws NotFound for a project the gateway does not know. */
  snapshot(topic: Topic): SnapshotMap[TopicKind] {
    const inScope = (namespace: string) => topic.namespace === ALL_NAMESPACES || topic.namespace === namespace;
    switch (topic.kind) {
      case 'projects':
        return { projects: sortCards([...this.projects.values()].map((state) => state.card).filter((card) => inScope(card.namespace))) };
      case 'project': {
        const state = this.projects.get(`${topic.namespace}/${topic.name}`);
        if (state === undefined)
          throw new RuntimeError(RuntimeErrorCode.NotFound, `no project ${topic.name} in namespace ${topic.namespace}`);
        return detailOf(state, state.card);
      }
      case 'pools':
        return { pools: sortPools([...this.pools.values()].filter((pool) => inScope(pool.namespace))) };
      case 'costs':
        return { rows: [...this.costs.values()].filter((row) => inScope(row.namespace)) };
    }
  }

  /** A project's detail around `card` (the runtime's current word on it); history is empty when the gateway saw none. */
  detail(card: ProjectCard): ProjectDetail {
    const state = this.projects.get(`${card.namespace}/${card.name}`);
    if (state === undefined) return { card, timeline: [], tasks: [], artifacts: [], activity: [], costSeries: [] };
    return detailOf(state, card);
  }

  /** Samples the pools now; called on a timer and after a scale command. */
  async samplePools(): Promise<void> {
    // A sample already under way may have read the pools before the change that asks for this one.
    if (this.sampling) {
      this.sampleAgain = true;
      return;
    }
    this.sampling = true;
    try {
      const entries: PoolEntry[] = await this.options.api.listPools();
      const now = this.options.now();
      const seen = new Set<string>();
      for (const entry of entries) {
        const view = poolView(entry, now);
        const key = `${view.namespace}/${view.name}`;
        seen.add(key);
        const known = this.pools.get(key);
        if (known === undefined || poolChanged(known, view)) this.upsertPool(view);
      }
      for (const [key, pool] of this.pools) {
        if (seen.has(key)) continue;
        this.pools.delete(key);
        this.publishPool({ ...pool, updatedAt: now }, true);
      }
    } catch (error) {
      this.options.onError(toError(error));
    } finally {
      this.sampling = false;
    }
    if (this.sampleAgain) {
      this.sampleAgain = false;
      await this.samplePools();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    await this.stopWatching?.();
  }

  private seedProject(summary: ProjectSummary): void {
    const card = projectCard(summary, this.options.now());
    const state = this.newProject(card);
    state.lastSequence = summary.status?.lastSequence ?? 0;
    state.described = true;
    for (const artifact of summary.status?.artifacts ?? [])
      state.artifacts.set(artifact.name, artifactView(card.namespace, card.name, artifact));
    if (card.currentPhase !== '') {
      const awaiting = card.awaitingApproval !== null;
      state.timeline.push({
        phase: card.currentPhase,
        state: awaiting ? 'awaiting' : 'active',
        startedAt: card.startedAt ?? card.updatedAt,
        endedAt: null,
      });
    }
    if (card.cost.usd > 0) state.costSeries.push({ at: card.updatedAt, usd: card.cost.usd });
  }

  private newProject(card: ProjectCard): ProjectState {
    const state: ProjectState = {
      card,
      lastSequence: 0,
      timeline: [],
      tasks: new Map(),
      artifacts: new Map(),
      activity: [],
      costSeries: [],
      described: false,
    };
    this.projects.set(`${card.namespace}/${card.name}`, state);
    return state;
  }

  /** The state of a project, created from its first event when the gateway has not seen it; the runtime fills in the rest. */
  private projectState(namespace: string, name: string): ProjectState {
    const known = this.projects.get(`${namespace}/${name}`);
    if (known !== undefined) return known;
    const state = this.newProject(projectCard({ namespace, name, client: '', priority: 0, status: undefined }, this.options.now()));
    void this.describe(state);
    return state;
  }

  /** Asks the runtime for what events do not carry; takes its status too when it is newer than what was folded. */
  private async describe(state: ProjectState): Promise<void> {
    if (state.described) return;
    state.described = true;
    try {
      const summary = await this.options.api.getProject(state.card.namespace, state.card.name);
      if (summary === undefined) return;
      const card = state.card;
      card.client = summary.client;
      card.priority = summary.priority;
      if ((summary.status?.lastSequence ?? 0) > state.lastSequence) {
        const fresh = projectCard(summary, this.options.now());
        Object.assign(card, { ...fresh, updatedAt: card.updatedAt });
        state.lastSequence = summary.status?.lastSequence ?? state.lastSequence;
      }
      this.publishProject(state, { card, activity: null });
    } catch (error) {
      state.described = false;
      this.options.onError(toError(error));
    }
  }

  /**
   * Moves the timeline to the card's current phase: a new step when the workflow phase changed
   * (a review loop back to implementation is a new step), else the last step's state.
   */
  private advanceTimeline(state: ProjectState, at: number): TimelineStep[] {
    const { card, timeline } = state;
    let last = timeline.at(-1);
    if (card.currentPhase !== '' && (last === undefined || last.phase !== card.currentPhase)) {
      if (last !== undefined && last.endedAt === null) Object.assign(last, { state: 'done', endedAt: at });
      last = { phase: card.currentPhase, state: 'active', startedAt: at, endedAt: null };
      timeline.push(last);
    }
    if (last === undefined) return timeline;
    if (card.phase === 'Delivered' || card.phase === 'Failed') {
      if (last.endedAt === null) Object.assign(last, { state: card.phase === 'Delivered' ? 'done' : 'failed', endedAt: at });
    } else {
      // A paused or resumed project carries on in the same step.
      Object.assign(last, { state: card.awaitingApproval === last.phase ? 'awaiting' : 'active', endedAt: null });
    }
    return timeline;
  }

  private addCost(card: ProjectCard, role: string, model: string, spend: CostView): void {
    const key = `${card.namespace}/${card.name}/${role}/${model}`;
    const row = this.costs.get(key) ?? {
      namespace: card.namespace,
      client: card.client,
      project: card.name,
      role,
      model,
      usd: 0,
      tokensIn: 0,
      tokensOut: 0,
      llmCalls: 0,
    };
    row.client = card.client;
    row.usd += spend.usd;
    row.tokensIn += spend.tokensIn;
    row.tokensOut += spend.tokensOut;
    row.llmCalls += spend.llmCalls;
    this.costs.set(key, row);
    for (const namespace of [card.namespace, ALL_NAMESPACES]) this.options.hub.publish('costs', `costs/${namespace}`, { row });
  }

  private publishProject(state: ProjectState, delta: ProjectDelta): void {
    const { namespace, name } = state.card;
    const { hub } = this.options;
    hub.publish('project', `project/${namespace}/${name}`, delta);
    for (const scope of [namespace, ALL_NAMESPACES]) hub.publish('projects', `projects/${scope}`, { card: state.card });
  }

  private upsertPool(view: PoolView): void {
    this.pools.set(`${view.namespace}/${view.name}`, view);
    this.publishPool(view, false);
  }

  private publishPool(pool: PoolView, removed: boolean): void {
    for (const scope of [pool.namespace, ALL_NAMESPACES]) this.options.hub.publish('pools', `pools/${scope}`, { pool, removed });
  }
}

function detailOf(state: ProjectState, card: ProjectCard): ProjectDetail {
  return {
    card,
    timeline: state.timeline,
    tasks: [...state.tasks.values()],
    artifacts: [...state.artifacts.values()],
    activity: state.activity,
    costSeries: state.costSeries,
  };
}

function sortCards(cards: ProjectCard[]): ProjectCard[] {
  return cards.sort((a, b) => b.priority - a.priority || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}

function sortPools(pools: PoolView[]): PoolView[] {
  return pools.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}
