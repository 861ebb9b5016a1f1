/**
 * What the outside world sees of a project: its state as a ProjectSummary, and each of its
 * journal events as the protobuf Events published on `troupe.events`.
 */
import { Event, ProjectPhase, TaskState, type ProjectSummary } from '@troupe/proto';
import type { LifecyclePhase, ProjectEvent, ProjectState, TaskRecord } from './project.types.js';

export const EVENTS_TOPIC = 'troupe.events';

/** Lifecycle phases as the protobuf enum numbers them. */
export const LIFECYCLE: Record<LifecyclePhase, ProjectPhase> = {
  Pending: ProjectPhase.PENDING,
  Planning: ProjectPhase.PLANNING,
  Running: ProjectPhase.RUNNING,
  AwaitingApproval: ProjectPhase.AWAITING_APPROVAL,
  Paused: ProjectPhase.PAUSED,
  Delivered: ProjectPhase.DELIVERED,
  Failed: ProjectPhase.FAILED,
};

const TASK_STATE: Record<TaskRecord['state'], TaskState> = {
  pending: TaskState.PENDING,
  running: TaskState.RUNNING,
  succeeded: TaskState.SUCCEEDED,
  failed: TaskState.FAILED,
};

type Body = NonNullable<Event['event']>;

/** Tasks done, failed and in all, and how far through its workflow the project is. */
export function progress(state: ProjectState) {
  const tasks = Object.values(state.tasks);
  const done = tasks.filter((task) => task.state === 'succeeded').length;
  const failed = tasks.filter((task) => task.state === 'failed').length;
  const phases = Math.max(1, state.workflow.length);
  const current = tasks.filter((task) => task.phase === state.workflow[state.phaseIndex]?.name && task.step === state.iteration);
  const within = current.length === 0 ? 0 : current.filter((task) => task.state === 'succeeded').length / current.length;
  const percent = state.lifecycle === 'Delivered' ? 100 : Math.min(99, Math.floor((100 * (state.phaseIndex + within)) / phases));
  return { tasksTotal: tasks.length, tasksDone: done, tasksFailed: failed, percent };
}

function cost(state: ProjectState) {
  const { usd, tokensIn, tokensOut, llmCalls } = state.spend;
  return { usd, tokensIn, tokensOut, llmCalls };
}

/** The bodies of the public events one journal event makes, given the state after it. */
export function publicEvents(event: ProjectEvent, after: ProjectState, before: ProjectState): Body[] {
  switch (event.type) {
    case 'lifecycle': {
      const changed: Body = {
        $case: 'projectPhaseChanged',
        value: {
          previous: LIFECYCLE[before.lifecycle],
          phase: LIFECYCLE[event.phase],
          currentPhase: after.workflow[after.phaseIndex]?.name ?? '',
          reason: event.reason,
          message: event.message,
        },
      };
      if (event.phase === 'AwaitingApproval') {
        return [changed, { $case: 'approvalRequested', value: { phase: after.workflow[after.phaseIndex]?.name ?? '' } }];
      }
      if (event.phase === 'Delivered')
        return [changed, { $case: 'projectDelivered', value: { artifacts: after.artifacts, cost: cost(after) } }];
      if (event.phase === 'Failed') return [changed, { $case: 'projectFailed', value: { reason: event.reason, message: event.message } }];
      return [changed];
    }
    case 'phase-started':
      return [
        {
          $case: 'projectPhaseChanged',
          value: {
            previous: LIFECYCLE[before.lifecycle],
            phase: LIFECYCLE[after.lifecycle],
            currentPhase: after.workflow[event.index]?.name ?? '',
            reason: 'PhaseStarted',
            message: `${after.workflow[event.index]?.name ?? ''} started${event.iteration > 0 ? ` (iteration ${event.iteration + 1})` : ''}`,
          },
        },
      ];
    case 'tasks-added':
      return event.tasks.map((task) => taskChanged(after.tasks[task.id] ?? task, after));
    case 'task-started':
    case 'task-failed':
      return [taskChanged(after.tasks[event.taskId] as TaskRecord, after)];
    case 'task-succeeded': {
      const task = after.tasks[event.taskId] as TaskRecord;
      return [
        taskChanged(task, after),
        ...event.artifacts.map((artifact): Body => ({ $case: 'artifactStored', value: artifact })),
        {
          $case: 'costRecorded',
          value: { ...event.spend, role: task.role, model: '', taskId: task.id, total: cost(after) },
        },
      ];
    }
    case 'submitted':
    case 'approved':
      return [];
  }
}

function taskChanged(task: TaskRecord, state: ProjectState): Body {
  return {
    $case: 'taskStateChanged',
    value: {
      taskId: task.id,
      title: task.title,
      phase: task.phase,
      role: task.role,
      pool: task.pool ?? state.spec?.pools[task.role] ?? '',
      state: TASK_STATE[task.state],
      attempt: task.step + 1,
      errorMessage: task.error ?? '',
      progress: progress(state),
    },
  };
}

/** The encoded Event with the given sequence number (its id derives from it, so re-publishing is recognisable). */
export function encodeEvent(state: ProjectState, sequence: number, body: Body, at: number): Uint8Array {
  return Event.encode({
    id: `${state.namespace}/${state.name}#${sequence}`,
    sequence,
    occurredAt: at,
    namespace: state.namespace,
    project: state.name,
    event: body,
  }).finish();
}

/** The project as listings and GetProject show it. */
export function summary(state: ProjectState): ProjectSummary {
  return {
    namespace: state.namespace,
    name: state.name,
    client: state.spec?.client ?? '',
    priority: state.spec?.priority ?? 0,
    status: {
      phase: LIFECYCLE[state.lifecycle],
      observedGeneration: state.generation,
      conditions: [],
      currentPhase: state.workflow[state.phaseIndex]?.name ?? '',
      progress: progress(state),
      cost: cost(state),
      artifacts: state.artifacts,
      startedAt: state.startedAt,
      completedAt: state.completedAt,
      lastSequence: state.published,
    },
  };
}
