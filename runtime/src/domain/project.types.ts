/**
 * The Project actor's messages, events and state. A project is addressed by
 * `<namespace>/<name>`; its spec is the Project resource's spec.
 */
import type { PhaseDefinition } from './workflow.js';

export type Deliverable = 'requirements' | 'architecture' | 'code' | 'tests' | 'docs' | 'deployment';

export interface ProjectSpec {
  client: string;
  brief: string;
  workflow: string;
  deliverables: Deliverable[];
  budget: { maxCostUSD: number; maxTokens?: number; onExceeded: 'Pause' | 'Fail' };
  /** role → AgentPool name. */
  pools: Record<string, string>;
  approvals: string[];
  /** How long a phase may wait for its approval (`30m`, `24h`, `1h30m`); no limit when unset. */
  approvalTimeout?: string;
  priority: number;
  deadline?: number;
  suspend: boolean;
  /** Where the deliverables are pushed once the project is delivered. */
  delivery?: { git?: GitTarget };
  /** Who hears about phase changes, approvals waiting and the delivery. */
  notify?: NotifyTargets;
}

/** A Secret of the project's namespace, by name; which of its keys are read depends on the use. */
export interface SecretName {
  name: string;
}

/** A branch of a git repository the deliverables are committed to. */
export interface GitTarget {
  url: string;
  /** Empty: the repository's default branch. */
  branch: string;
  /** Keys `username` (optional) and `password` (or a token): the credentials of an http(s) remote. */
  secretRef?: SecretName;
}

export interface NotifyTargets {
  /** Endpoints POSTed every notice; key `secret` of `secretRef` signs the payloads. */
  webhooks: { url: string; secretRef?: SecretName }[];
  /** Addresses mailed on every phase change. */
  email: string[];
}

/** Lifecycle phases, as Project.status.phase shows them. */
export type LifecyclePhase = 'Pending' | 'Planning' | 'Running' | 'AwaitingApproval' | 'Paused' | 'Delivered' | 'Failed';

export interface ArtifactRef {
  name: string;
  kind: string;
  uri: string;
  sha256: string;
  bytes: number;
}

export interface Spend {
  usd: number;
  tokensIn: number;
  tokensOut: number;
  llmCalls: number;
}

export type TaskKind = 'work' | 'planner';

export interface TaskRecord {
  id: string;
  title: string;
  /** The workflow phase the task belongs to. */
  phase: string;
  role: string;
  kind: TaskKind;
  /** Task ids that must succeed first. */
  needs: string[];
  state: 'pending' | 'running' | 'succeeded' | 'failed';
  /** Which run of the task: a review loop runs implementation again with the next step. */
  step: number;
  /** The AgentPool its latest run went to, and when it was sent there (unix ms). */
  pool?: string;
  dispatchedAt?: number;
  /** Runs that failed for reasons outside the task and were tried again. */
  retries?: number;
  /** What the task produced, short, as later prompts quote it. */
  summary?: string;
  error?: string;
}

/** Inputs of a Project actor. */
export type ProjectMessage =
  | {
      type: 'submit';
      namespace: string;
      name: string;
      uid: string;
      generation: number;
      spec: ProjectSpec;
      /** The phases of a Workflow resource; unset when spec.workflow is built in. */
      phases?: PhaseDefinition[];
    }
  | { type: 'cancel'; reason: string }
  | { type: 'approve'; phase: string; by: string }
  | {
      type: 'task-done';
      taskId: string;
      step: number;
      /** The project's incarnation the run was for (unset: its first); see ProjectState. */
      incarnation?: number;
      summary: string;
      items: string[];
      artifacts: ArtifactRef[];
      spend: Spend;
      verdict?: boolean;
    }
  /** `retriable`: the task failed for a reason outside it (a store, broker or provider down for now); trying again may help. */
  | {
      type: 'task-failed';
      taskId: string;
      step: number;
      incarnation?: number;
      code: string;
      message: string;
      onExceeded?: 'Pause' | 'Fail';
      retriable?: boolean;
    }
  | { type: 'check-tasks' }
  /** The approval timer of `phase`'s gate ran out. */
  | { type: 'approval-timeout'; phase: string }
  | { type: 'get' };

/** What `approve` answers: refused approvals name why, rather than dead-lettering the message. */
export type ApproveReply = { ok: true } | { ok: false; message: string };

export type ProjectEvent =
  | {
      type: 'submitted';
      namespace: string;
      name: string;
      uid: string;
      generation: number;
      spec: ProjectSpec;
      workflow: PhaseDefinition[];
      at: number;
    }
  | { type: 'lifecycle'; phase: LifecyclePhase; reason: string; message: string; at: number }
  | { type: 'phase-started'; index: number; iteration: number; at: number }
  | { type: 'tasks-added'; tasks: TaskRecord[] }
  /** `pool`: the AgentPool the run went to, `at` when (both unset in journals older than pool topics). */
  | { type: 'task-started'; taskId: string; step: number; pool?: string; at?: number }
  | { type: 'task-succeeded'; taskId: string; step: number; summary: string; artifacts: ArtifactRef[]; spend: Spend; verdict?: boolean }
  /** `final`: the task failed for good; otherwise it waits to run again (e.g. after a budget raise). */
  /** `retry`: it waits to run again after a failure outside it, which counts against its retries. */
  | { type: 'task-failed'; taskId: string; step: number; message: string; final: boolean; retry?: boolean }
  | { type: 'approved'; phase: string };

export interface ProjectState {
  namespace: string;
  name: string;
  uid: string;
  /**
   * How many projects had this name before this one (each deleted, then the name created again
   * with a new uid); unset for the first. Runs are keyed with it, so no earlier one's work counts.
   */
  incarnation?: number;
  generation: number;
  spec?: ProjectSpec;
  workflow: PhaseDefinition[];
  lifecycle: LifecyclePhase;
  reason: string;
  message: string;
  /** Index into `workflow` of the phase under way. */
  phaseIndex: number;
  /** How many times a loop sent the work back. */
  iteration: number;
  tasks: Record<string, TaskRecord>;
  artifacts: ArtifactRef[];
  spend: Spend;
  approved: string[];
  /** The last review's verdict: true when it passed. */
  verdict?: boolean;
  startedAt?: number;
  completedAt?: number;
  /** Events published to `troupe.events` so far; the next one's sequence is this + 1. */
  published: number;
}

export const NO_SPEND: Spend = { usd: 0, tokensIn: 0, tokensOut: 0, llmCalls: 0 };
