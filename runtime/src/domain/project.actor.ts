/**
 * The Project actor: runs one client project through its workflow. It decides — which phase
 * runs, which tasks are ready, when a human must approve, when the budget stops the work — and
 * journals each decision; the tasks themselves run outside its turns: it publishes each on its
 * pool's topic, a replica of the pool runs it, and the outcome comes back as a message. Every
 * state change is also published on `troupe.events`.
 */
import { poolTopic, type Event } from '@troupe/proto';
import { defineActor, type ActorContext } from '../actors/actor.js';
import { encodeEvent, EVENTS_TOPIC, publicEvents, summary } from './project-events.js';
import {
  NO_SPEND,
  type ApproveReply,
  type LifecyclePhase,
  type ProjectEvent,
  type ProjectMessage,
  type ProjectState,
  type TaskRecord,
} from './project.types.js';
import { encodeTaskRun, runKey, taskRun } from './task-runner.js';
import { builtInWorkflow } from './workflow.js';

/** Work tasks a planner may create in one fan-out phase. */
const MAX_FAN_OUT = 6;

/** How soon tasks that wait for a pool look again. */
const POOL_WAIT_MS = 2_000;

/** A task failed for a reason outside it runs again after 5 s, 10 s, 20 s… up to 60 s, five times at most. */
const MAX_TASK_RETRIES = 5;
const TASK_RETRY_BASE_MS = 5_000;
const TASK_RETRY_MAX_MS = 60_000;

/** Where a role's tasks go (the node's PoolDirectory). */
export interface PoolResolver {
  /** The pool named `named`, else the namespace's pool for `role`; undefined while none runs. */
  resolve(namespace: string, role: string, named?: string): string | undefined;
}

export interface ProjectActorOptions {
  pools: PoolResolver;
  /** How often a project dispatches its running tasks again, in case their replica died (default 30 s). */
  taskCheckMs: number;
  /** Told of each public event within the turn that publishes it (the delivery outbox queues its notices so). */
  onPublished?: (ctx: Context, state: ProjectState, sequence: number, body: NonNullable<Event['event']>) => void;
}

type Context = ActorContext<ProjectState, ProjectMessage, ProjectEvent>;

const TERMINAL: readonly LifecyclePhase[] = ['Delivered', 'Failed'];

/** The timer of the gate waiting now: one at a time, as a project waits at one gate at a time. */
const APPROVAL_TIMER = 'approval-timeout';

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1_000 };

function initialState(): ProjectState {
  return {
    namespace: '',
    name: '',
    uid: '',
    generation: 0,
    workflow: [],
    lifecycle: 'Pending',
    reason: '',
    message: '',
    phaseIndex: 0,
    iteration: 0,
    tasks: {},
    artifacts: [],
    spend: NO_SPEND,
    approved: [],
    published: 0,
  };
}

export function projectActor(options: ProjectActorOptions) {
  return defineActor<ProjectState, ProjectMessage, ProjectEvent, unknown>({
    type: 'project',
    initialState,
    apply,
    receive(ctx, message) {
      const state = ctx.state;
      switch (message.type) {
        case 'get':
          return state.spec === undefined ? undefined : summary(state);
        case 'submit':
          submit(ctx, message, options);
          return undefined;
        case 'cancel':
          if (state.spec !== undefined && !TERMINAL.includes(state.lifecycle)) {
            record(ctx, options, { type: 'lifecycle', phase: 'Failed', reason: 'Cancelled', message: message.reason, at: ctx.now });
          }
          return undefined;
        case 'approve':
          return approve(ctx, message.phase, options);
        case 'task-done': {
          const task = answered(state, message);
          if (task === undefined) return undefined;
          record(ctx, options, {
            type: 'task-succeeded',
            taskId: task.id,
            step: task.step,
            summary: message.summary,
            artifacts: message.artifacts,
            spend: message.spend,
            verdict: message.verdict,
          });
          if (task.kind === 'planner') plan(ctx, options, task, message.items);
          advance(ctx, options);
          return undefined;
        }
        case 'task-failed': {
          const task = answered(state, message);
          if (task === undefined) return undefined;
          if (message.code === 'BUDGET_EXCEEDED') {
            // The task goes back to pending: raising the budget resumes it where it stopped.
            record(ctx, options, { type: 'task-failed', taskId: task.id, step: task.step, message: message.message, final: false });
            const fail = message.onExceeded === 'Fail';
            record(ctx, options, {
              type: 'lifecycle',
              phase: fail ? 'Failed' : 'Paused',
              reason: 'BudgetExceeded',
              message: message.message,
              at: ctx.now,
            });
            return undefined;
          }
          const retries = task.retries ?? 0;
          if (message.retriable === true && retries < MAX_TASK_RETRIES) {
            record(ctx, options, {
              type: 'task-failed',
              taskId: task.id,
              step: task.step,
              message: message.message,
              final: false,
              retry: true,
            });
            const delayMs = Math.min(TASK_RETRY_MAX_MS, TASK_RETRY_BASE_MS * 2 ** retries);
            ctx.schedule('check-tasks', { delayMs }, { type: 'check-tasks' });
            return undefined;
          }
          record(ctx, options, { type: 'task-failed', taskId: task.id, step: task.step, message: message.message, final: true });
          record(ctx, options, {
            type: 'lifecycle',
            phase: 'Failed',
            reason: 'TaskFailed',
            message: `${task.title}: ${message.message}`,
            at: ctx.now,
          });
          return undefined;
        }
        case 'check-tasks':
          checkTasks(ctx, options);
          return undefined;
        case 'approval-timeout':
          approvalTimedOut(ctx, message.phase, options);
          return undefined;
      }
    },
  });
}

/** The running task an outcome answers; undefined for an outcome of an earlier run, or of an earlier project of the name. */
function answered(state: ProjectState, outcome: { taskId: string; step: number; incarnation?: number }): TaskRecord | undefined {
  const task = state.tasks[outcome.taskId];
  if (task?.state !== 'running' || task.step !== outcome.step || outcome.incarnation !== state.incarnation) return undefined;
  return task;
}

/** Journals an event and publishes what it means for the outside world. */
function record(ctx: Context, options: Pick<ProjectActorOptions, 'onPublished'>, event: ProjectEvent): void {
  const before = ctx.state;
  ctx.emit(event);
  const after = ctx.state;
  const bodies = publicEvents(event, after, before);
  bodies.forEach((body, i) => {
    const sequence = after.published - bodies.length + i + 1;
    ctx.publish(EVENTS_TOPIC, `${after.namespace}/${after.name}`, encodeEvent(after, sequence, body, ctx.now));
    options.onPublished?.(ctx, after, sequence, body);
  });
}

function submit(ctx: Context, message: Extract<ProjectMessage, { type: 'submit' }>, options: ProjectActorOptions): void {
  const state = ctx.state;
  // A new uid under the name is a new project (the Project was deleted and created again): the
  // one before it ends, if it had not, and the new one starts from nothing.
  const replaces = state.spec !== undefined && message.uid !== state.uid;
  if (replaces && !TERMINAL.includes(state.lifecycle)) {
    record(ctx, options, {
      type: 'lifecycle',
      phase: 'Failed',
      reason: 'Replaced',
      message: `a new project of the same name (uid ${message.uid}) replaced it`,
      at: ctx.now,
    });
  }
  if (replaces) ctx.cancelTimer(APPROVAL_TIMER);
  const isNew = state.spec === undefined || replaces;
  const workflow = isNew ? (message.phases ?? builtInWorkflow(message.spec.workflow)) : state.workflow;
  record(ctx, options, {
    type: 'submitted',
    namespace: message.namespace,
    name: message.name,
    uid: message.uid,
    generation: message.generation,
    spec: message.spec,
    workflow: [...(workflow ?? [])],
    at: ctx.now,
  });
  if (isNew) {
    if (workflow === undefined) {
      record(ctx, options, {
        type: 'lifecycle',
        phase: 'Failed',
        reason: 'WorkflowNotFound',
        message: `workflow "${message.spec.workflow}" is neither built in nor defined in namespace ${message.namespace}`,
        at: ctx.now,
      });
      return;
    }
    if (message.spec.suspend) {
      record(ctx, options, { type: 'lifecycle', phase: 'Paused', reason: 'Suspended', message: 'spec.suspend is true', at: ctx.now });
      return;
    }
    record(ctx, options, { type: 'lifecycle', phase: 'Planning', reason: 'Accepted', message: 'the project was accepted', at: ctx.now });
    startPhase(ctx, 0, 0, options);
    return;
  }
  const now = ctx.state;
  if (TERMINAL.includes(now.lifecycle)) return;
  if (message.spec.suspend && now.lifecycle !== 'Paused') {
    record(ctx, options, { type: 'lifecycle', phase: 'Paused', reason: 'Suspended', message: 'spec.suspend is true', at: ctx.now });
    return;
  }
  const resumable =
    now.lifecycle === 'Paused' &&
    !message.spec.suspend &&
    (now.reason === 'Suspended' || (now.reason === 'BudgetExceeded' && message.spec.budget.maxCostUSD > now.spend.usd));
  if (resumable) {
    record(ctx, options, { type: 'lifecycle', phase: 'Running', reason: 'Resumed', message: `resumed after ${now.reason}`, at: ctx.now });
    advance(ctx, options);
  }
}

function approve(ctx: Context, phase: string, options: ProjectActorOptions): ApproveReply {
  const state = ctx.state;
  const awaiting = state.workflow[state.phaseIndex]?.name;
  if (state.lifecycle !== 'AwaitingApproval' || awaiting !== phase) {
    const now = state.lifecycle === 'AwaitingApproval' ? `it waits for approval of ${awaiting}` : `it is ${state.lifecycle}`;
    return { ok: false, message: `project ${state.namespace}/${state.name} does not wait for approval of ${phase}: ${now}` };
  }
  record(ctx, options, { type: 'approved', phase });
  ctx.cancelTimer(APPROVAL_TIMER);
  record(ctx, options, { type: 'lifecycle', phase: 'Running', reason: 'Approved', message: `${phase} was approved`, at: ctx.now });
  advance(ctx, options);
  return { ok: true };
}

/** Milliseconds of a spec.approvalTimeout (`30m`, `24h`, `1h30m`), or undefined when it is not a positive one. */
export function approvalTimeoutMs(text: string): number | undefined {
  if (!/^(\d+[hms])+$/.test(text)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)([hms])/g)) ms += Number(amount) * (DURATION_UNIT_MS[unit ?? ''] ?? 0);
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

/** Fails the project when `phase`'s gate still waits; a gate approved, or left some other way, meanwhile is past. */
function approvalTimedOut(ctx: Context, phase: string, options: ProjectActorOptions): void {
  const state = ctx.state;
  if (state.lifecycle !== 'AwaitingApproval' || state.workflow[state.phaseIndex]?.name !== phase) return;
  record(ctx, options, {
    type: 'lifecycle',
    phase: 'Failed',
    reason: 'ApprovalTimedOut',
    message: `${phase} was not approved within the approval timeout of ${state.spec?.approvalTimeout ?? ''}`,
    at: ctx.now,
  });
}

function startPhase(ctx: Context, index: number, iteration: number, options: ProjectActorOptions): void {
  const phase = ctx.state.workflow[index];
  if (phase === undefined) return;
  record(ctx, options, { type: 'phase-started', index, iteration, at: ctx.now });
  if (ctx.state.lifecycle !== 'Running') {
    record(ctx, options, { type: 'lifecycle', phase: 'Running', reason: 'PhaseStarted', message: `${phase.name} started`, at: ctx.now });
  }
  const base = { phase: phase.name, needs: [], state: 'pending' as const, step: iteration };
  const task: TaskRecord = phase.fanOut
    ? { ...base, id: `${phase.name}-${iteration}-plan`, title: `Plan the ${phase.name}`, role: 'architect', kind: 'planner' }
    : { ...base, id: `${phase.name}-${iteration}`, title: titleOf(phase.name), role: phase.role, kind: 'work' };
  record(ctx, options, { type: 'tasks-added', tasks: [task] });
  dispatchReady(ctx, options);
}

/** A planner's items become parallel work tasks, and one more that integrates them. */
function plan(ctx: Context, options: ProjectActorOptions, planner: TaskRecord, items: readonly string[]): void {
  const phase = ctx.state.workflow.find((candidate) => candidate.name === planner.phase);
  if (phase === undefined) return;
  const titles = (items.length > 0 ? items : [`Implement: ${ctx.state.spec?.brief.slice(0, 80) ?? ''}`]).slice(0, MAX_FAN_OUT);
  const work = titles.map((title, i): TaskRecord => ({
    id: `${phase.name}-${planner.step}-${i + 1}`,
    title,
    phase: phase.name,
    role: phase.role,
    kind: 'work',
    needs: [],
    state: 'pending',
    step: planner.step,
  }));
  const integrate: TaskRecord = {
    id: `${phase.name}-${planner.step}-integrate`,
    title: 'Integrate the parts and write the entry point',
    phase: phase.name,
    role: phase.role,
    kind: 'work',
    needs: work.map((task) => task.id),
    state: 'pending',
    step: planner.step,
  };
  record(ctx, options, { type: 'tasks-added', tasks: [...work, integrate] });
}

/** Moves the project on: dispatches ready tasks, or finishes the phase and starts the next. */
function advance(ctx: Context, options: ProjectActorOptions): void {
  const state = ctx.state;
  if (state.lifecycle !== 'Running' && state.lifecycle !== 'Planning') return;
  const phase = state.workflow[state.phaseIndex];
  if (phase === undefined) return;
  const current = Object.values(state.tasks).filter((task) => task.phase === phase.name && task.step === state.iteration);
  if (current.some((task) => task.state !== 'succeeded')) {
    dispatchReady(ctx, options);
    return;
  }
  const needsApproval = phase.approval || (state.spec?.approvals.includes(phase.name) ?? false);
  if (needsApproval && !state.approved.includes(phase.name)) {
    record(ctx, options, {
      type: 'lifecycle',
      phase: 'AwaitingApproval',
      reason: 'ApprovalRequired',
      message: `${phase.name} waits for approval`,
      at: ctx.now,
    });
    const timeoutMs = state.spec?.approvalTimeout === undefined ? undefined : approvalTimeoutMs(state.spec.approvalTimeout);
    // Durable: a restart while the gate waits keeps the deadline.
    if (timeoutMs !== undefined) ctx.schedule(APPROVAL_TIMER, { delayMs: timeoutMs }, { type: 'approval-timeout', phase: phase.name });
    return;
  }
  if (phase.loop && state.verdict === false && state.iteration + 1 < phase.loop.maxIterations) {
    const back = state.workflow.findIndex((candidate) => candidate.name === phase.loop?.backTo);
    if (back >= 0) {
      startPhase(ctx, back, state.iteration + 1, options);
      return;
    }
  }
  const next = state.phaseIndex + 1;
  if (next >= state.workflow.length) {
    record(ctx, options, {
      type: 'lifecycle',
      phase: 'Delivered',
      reason: 'Delivered',
      message: `${state.artifacts.length} artefacts delivered`,
      at: ctx.now,
    });
    return;
  }
  startPhase(ctx, next, state.iteration, options);
}

/** Starts the tasks whose needs are met; true when some wait for a pool. */
function dispatchReady(ctx: Context, options: ProjectActorOptions): boolean {
  const state = ctx.state;
  if (state.lifecycle !== 'Running' && state.lifecycle !== 'Planning') return false;
  const ready = Object.values(state.tasks).filter(
    (task) => task.state === 'pending' && task.needs.every((id) => state.tasks[id]?.state === 'succeeded'),
  );
  let waiting = false;
  for (const task of ready) {
    const pool = options.pools.resolve(state.namespace, task.role, state.spec?.pools[task.role]);
    if (pool === undefined) {
      // No replica of the pool runs yet (its pods are starting, or it is not created yet).
      waiting = true;
      continue;
    }
    record(ctx, options, { type: 'task-started', taskId: task.id, step: task.step, pool, at: ctx.now });
    dispatch(ctx, ctx.state.tasks[task.id] as TaskRecord, pool);
  }
  if (waiting) ctx.schedule('check-tasks', { delayMs: Math.min(options.taskCheckMs, POOL_WAIT_MS) }, { type: 'check-tasks' });
  else if (ready.length > 0) ctx.schedule('check-tasks', { delayMs: options.taskCheckMs }, { type: 'check-tasks' });
  return waiting;
}

/** Publishes a run of a started task on its pool's topic. */
function dispatch(ctx: Context, task: TaskRecord, pool: string): void {
  const state = ctx.state;
  const key = runKey({ namespace: state.namespace, project: state.name, incarnation: state.incarnation, task });
  ctx.publish(poolTopic(state.namespace, pool), key, encodeTaskRun(`${ctx.messageId}/${key}`, taskRun(state, task), ctx.now));
}

/**
 * Dispatches the running tasks again, in case the replica that took one died (a replica that
 * still runs it drops the repeat), and the tasks that waited for a pool.
 */
function checkTasks(ctx: Context, options: ProjectActorOptions): void {
  const state = ctx.state;
  const running = Object.values(state.tasks).filter((task) => task.state === 'running');
  let waiting = false;
  if (state.lifecycle === 'Running' || state.lifecycle === 'Planning') {
    for (const task of running) {
      // A run sent less than a check ago is most likely still queued at its pool.
      if (task.dispatchedAt !== undefined && ctx.now - task.dispatchedAt < options.taskCheckMs) continue;
      const pool = task.pool ?? options.pools.resolve(state.namespace, task.role, state.spec?.pools[task.role]);
      if (pool !== undefined) dispatch(ctx, task, pool);
    }
    waiting = dispatchReady(ctx, options);
  }
  if (!waiting && running.length > 0) ctx.schedule('check-tasks', { delayMs: options.taskCheckMs }, { type: 'check-tasks' });
}

const TITLES: Readonly<Record<string, string>> = {
  requirements: 'Write the requirements document',
  architecture: 'Design the architecture',
  review: 'Review the implementation and write the tests',
  docs: 'Write the documentation',
  delivery: 'Prepare the delivery manifest',
};

function titleOf(phase: string): string {
  return TITLES[phase] ?? `Do the ${phase} work`;
}

/** Folds one journal event into the state; pure, as replay needs. */
function apply(state: ProjectState, event: ProjectEvent): ProjectState {
  const next = fold(state, event);
  return { ...next, published: state.published + publicEvents(event, next, state).length };
}

function fold(state: ProjectState, event: ProjectEvent): ProjectState {
  switch (event.type) {
    case 'submitted': {
      // A new uid starts a new project; `published` goes on counting, so event ids stay unique.
      const base =
        state.spec !== undefined && event.uid !== state.uid ? { ...initialState(), incarnation: (state.incarnation ?? 0) + 1 } : state;
      return {
        ...base,
        namespace: event.namespace,
        name: event.name,
        uid: event.uid,
        generation: event.generation,
        spec: event.spec,
        workflow: base.spec === undefined ? event.workflow : base.workflow,
      };
    }
    case 'lifecycle':
      return {
        ...state,
        lifecycle: event.phase,
        reason: event.reason,
        message: event.message,
        startedAt: state.startedAt ?? (event.phase === 'Planning' || event.phase === 'Running' ? event.at : undefined),
        completedAt: TERMINAL.includes(event.phase) ? event.at : state.completedAt,
      };
    case 'phase-started':
      return { ...state, phaseIndex: event.index, iteration: event.iteration, verdict: undefined };
    case 'tasks-added':
      return { ...state, tasks: { ...state.tasks, ...Object.fromEntries(event.tasks.map((task) => [task.id, task])) } };
    case 'task-started':
      return withTask(state, event.taskId, {
        state: 'running',
        step: event.step,
        error: undefined,
        ...(event.pool === undefined ? {} : { pool: event.pool }),
        ...(event.at === undefined ? {} : { dispatchedAt: event.at }),
      });
    case 'task-failed': {
      const retries = (state.tasks[event.taskId]?.retries ?? 0) + (event.retry === true ? 1 : 0);
      return withTask(state, event.taskId, { state: event.final ? 'failed' : 'pending', error: event.message, retries });
    }
    case 'task-succeeded': {
      const names = new Set(event.artifacts.map((artifact) => artifact.name));
      const spend = {
        usd: state.spend.usd + event.spend.usd,
        tokensIn: state.spend.tokensIn + event.spend.tokensIn,
        tokensOut: state.spend.tokensOut + event.spend.tokensOut,
        llmCalls: state.spend.llmCalls + event.spend.llmCalls,
      };
      return {
        ...withTask(state, event.taskId, { state: 'succeeded', summary: event.summary }),
        artifacts: [...state.artifacts.filter((artifact) => !names.has(artifact.name)), ...event.artifacts],
        spend,
        verdict: event.verdict ?? state.verdict,
      };
    }
    case 'approved':
      return { ...state, approved: [...state.approved, event.phase] };
  }
}

function withTask(state: ProjectState, id: string, patch: Partial<TaskRecord>): ProjectState {
  const task = state.tasks[id];
  if (task === undefined) return state;
  return { ...state, tasks: { ...state.tasks, [id]: { ...task, ...patch } } };
}
