/** Project (short name `proj`): a client's engagement, handed to the runtime; see crds/project.yaml. */
import { resourceType } from '../../kube/client.js';
import type { Condition, KubeObject } from '../../kube/types.js';
import { GROUP, VERSION } from './groupversion.js';

export type Deliverable = 'requirements' | 'architecture' | 'code' | 'tests' | 'docs' | 'deployment';

export type ProjectPhase = 'Pending' | 'Planning' | 'Running' | 'AwaitingApproval' | 'Paused' | 'Delivered' | 'Failed';

export interface SecretReference {
  name: string;
}

export interface ProjectSpec {
  /** The tenant, a DNS label; immutable. */
  client: string;
  brief: string;
  /** A Workflow in the namespace or a built-in (the API server defaults it to `software-delivery`). */
  workflow?: string;
  deliverables?: Deliverable[];
  budget: { maxCostUSD: number; maxTokens?: number; onExceeded?: 'Pause' | 'Fail' };
  /** Role → AgentPool name. */
  pools?: Record<string, string>;
  /** Workflow phases that wait for `kubectl annotate project NAME troupe.dev/approve=PHASE`. */
  approvals?: string[];
  /** How long a phase may wait for its approval: `30m`, `24h`, `1h30m`; no limit when unset. */
  approvalTimeout?: string;
  priority?: number;
  /** RFC 3339. */
  deadline?: string;
  suspend?: boolean;
  delivery?: { git?: { url: string; branch?: string; secretRef?: SecretReference } };
  notify?: { webhooks?: { url: string; secretRef?: SecretReference }[]; email?: string[] };
}

export interface ProjectArtifact {
  name: string;
  kind: string;
  uri: string;
  sha256?: string;
  bytes?: number;
}

export interface ProjectStatus {
  phase?: ProjectPhase;
  /** The spec generation last handed to the runtime. */
  observedGeneration?: number;
  /** Accepted, Running, AwaitingApproval, BudgetExceeded, Delivered, Failed. */
  conditions?: Condition[];
  currentPhase?: string;
  progress?: { tasksTotal: number; tasksDone: number; tasksFailed: number; percent: number };
  cost?: { usd: number; tokensIn: number; tokensOut: number; llmCalls: number };
  artifacts?: ProjectArtifact[];
  /** RFC 3339. */
  startedAt?: string;
  completedAt?: string;
}

export interface Project extends KubeObject {
  spec: ProjectSpec;
  status?: ProjectStatus;
}

export const Projects = resourceType<Project>(GROUP, VERSION, 'Project', 'projects');

/** `kubectl annotate project NAME troupe.dev/approve=PHASE` releases the approval gate of PHASE. */
export const APPROVE_ANNOTATION = 'troupe.dev/approve';

/** Held while the runtime may still run the project: removed once it was cancelled there. */
export const PROJECT_FINALIZER = 'troupe.dev/cancel-in-runtime';
