/**
 * Condition types and the CamelCase reasons the controllers write into conditions and Events,
 * in one place so that `kubectl wait`, alerts and dashboards can rely on them.
 */
import type { Condition } from '../kube/types.js';

export const ConditionType = {
  /** AgentPool, ModelProvider, Workflow: usable as specified. */
  Ready: 'Ready',
  /** AgentPool: running, but something the pool needs is failing. */
  Degraded: 'Degraded',
  /** Project: handed to the runtime (or refused, with the reason). */
  Accepted: 'Accepted',
  Running: 'Running',
  AwaitingApproval: 'AwaitingApproval',
  BudgetExceeded: 'BudgetExceeded',
  Delivered: 'Delivered',
  Failed: 'Failed',
} as const;

export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** AgentPool reasons. */
export const PoolReason = {
  ReplicasReady: 'ReplicasReady',
  ReplicasNotReady: 'ReplicasNotReady',
  ScaledToZero: 'ScaledToZero',
  /** Degraded=False. */
  AsExpected: 'AsExpected',
  /** The Deployment reports ReplicaFailure or an exceeded progress deadline. */
  DeploymentFailing: 'DeploymentFailing',
  /** The pool's Kafka topic could not be created or grown. */
  TopicUnavailable: 'TopicUnavailable',
  /** spec.model.provider names no ModelProvider in the namespace, or one that is not Ready. */
  ProviderNotReady: 'ProviderNotReady',
  /** A Deployment of the pool's name exists that this pool does not control; it is left alone. */
  DeploymentNotOwned: 'DeploymentNotOwned',
  /** Events. */
  DeploymentCreated: 'DeploymentCreated',
  DeploymentUpdated: 'DeploymentUpdated',
  TopicCreated: 'TopicCreated',
  TopicGrown: 'TopicGrown',
  /** Events of embedded mode, where pools run inside the runtime. */
  RuntimePoolStarted: 'RuntimePoolStarted',
  RuntimePoolUpdated: 'RuntimePoolUpdated',
  RuntimePoolScaled: 'RuntimePoolScaled',
} as const;

/** ModelProvider reasons. */
export const ProviderReason = {
  /** The API key Secret exists and holds the key. */
  CredentialsFound: 'CredentialsFound',
  /** simulated or ollama without apiKeySecretRef. */
  NoCredentialsNeeded: 'NoCredentialsNeeded',
  SecretNotFound: 'SecretNotFound',
  SecretKeyMissing: 'SecretKeyMissing',
} as const;

/** Workflow reasons. */
export const WorkflowReason = {
  PhasesValid: 'PhasesValid',
  /** Phases need each other in a circle; the message names it. */
  NeedsCycle: 'NeedsCycle',
  /** A loop's backTo is not a phase the looping phase (transitively) needs. */
  LoopNotBackward: 'LoopNotBackward',
} as const;

/** Project reasons written by the operator (the runtime's own reasons pass through unchanged). */
export const ProjectReason = {
  /** The runtime durably queued the spec's current generation. */
  Submitted: 'Submitted',
  /** The runtime's gRPC service did not answer; the operator keeps retrying. */
  RuntimeUnavailable: 'RuntimeUnavailable',
  /** The runtime refused the spec; fix the spec. */
  RuntimeRejected: 'RuntimeRejected',
  /** The runtime refused the operator's token; the operator keeps retrying. */
  RuntimeForbidden: 'RuntimeForbidden',
  /** spec.workflow names a Workflow in the namespace that is not Ready. */
  WorkflowNotReady: 'WorkflowNotReady',
  /** AwaitingApproval. (Running's reason is the phase itself: Planning, Running, Paused, …) */
  ApprovalRequired: 'ApprovalRequired',
  NoApprovalPending: 'NoApprovalPending',
  /** BudgetExceeded, and Paused/Failed reasons the runtime uses. */
  BudgetExceeded: 'BudgetExceeded',
  WithinBudget: 'WithinBudget',
  Suspended: 'Suspended',
  /** Delivered. */
  Delivered: 'Delivered',
  NotDelivered: 'NotDelivered',
  /** Failed, when the runtime gave no reason the operator saw. */
  Failed: 'Failed',
  NotFailed: 'NotFailed',
  /** Events. */
  Approved: 'Approved',
  ApprovalRefused: 'ApprovalRefused',
  UnknownApprovalPhase: 'UnknownApprovalPhase',
  Cancelled: 'Cancelled',
} as const;

/** A condition as a controller decides it; `setCondition` adds the transition time. */
export interface DesiredCondition {
  type: ConditionType;
  status: Condition['status'];
  reason: string;
  message: string;
  observedGeneration?: number;
}

/**
 * Returns `conditions` with `desired` in place of the condition of its type, keeping
 * `lastTransitionTime` when the status did not change (apimachinery's SetStatusCondition).
 */
export function setCondition(conditions: readonly Condition[] | undefined, desired: DesiredCondition, now: Date): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((condition) => condition.type === desired.type);
  const previous = index === -1 ? undefined : list[index];
  const next: Condition = {
    ...desired,
    lastTransitionTime: previous !== undefined && previous.status === desired.status ? previous.lastTransitionTime : rfc3339(now),
  };
  if (index === -1) list.push(next);
  else list[index] = next;
  return list;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: ConditionType): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}

/** Seconds precision, as metav1.Time serialises. */
export function rfc3339(time: Date): string {
  return time.toISOString().replace(/\.\d+Z$/, 'Z');
}
