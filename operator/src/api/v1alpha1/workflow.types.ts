/** Workflow (short name `wf`): the phases projects are planned through; see crds/workflow.yaml. */
import { resourceType } from '../../kube/client.js';
import type { Condition, KubeObject } from '../../kube/types.js';
import { GROUP, VERSION } from './groupversion.js';

export interface WorkflowPhase {
  name: string;
  role: string;
  /** Phases that must finish first; the CRD checks they exist, the operator that they form no cycle. */
  needs?: string[];
  produces?: string[];
  fanOut?: boolean;
  approval?: boolean;
  loop?: { backTo: string; maxIterations: number };
}

export interface WorkflowSpec {
  phases: WorkflowPhase[];
}

export interface WorkflowStatus {
  observedGeneration?: number;
  /** Ready. */
  conditions?: Condition[];
}

export interface Workflow extends KubeObject {
  spec: WorkflowSpec;
  status?: WorkflowStatus;
}

export const Workflows = resourceType<Workflow>(GROUP, VERSION, 'Workflow', 'workflows');
