/** AgentPool (short name `ap`): a team of agents with one role, run as a Deployment; see crds/agentpool.yaml. */
import type { V1ResourceRequirements } from '@kubernetes/client-node';
import { resourceType } from '../../kube/client.js';
import type { Condition, KubeObject } from '../../kube/types.js';
import { GROUP, VERSION } from './groupversion.js';

export interface AgentPoolSpec {
  /** pm, analyst, architect, developer, qa, devops, writer, or a custom lowercase name. */
  role: string;
  /** 0..1000; the API server defaults it to 1. Also written by `kubectl scale` and HPAs. */
  replicas?: number;
  model: {
    /** A ModelProvider in the namespace. */
    provider: string;
    name: string;
    temperature?: number;
    maxOutputTokens?: number;
  };
  /** LLM calls in flight per replica; defaulted to 4. */
  concurrency?: number;
  rateLimit?: { requestsPerMinute?: number; tokensPerMinute?: number };
  systemPrompt?: string;
  promptRef?: { configMapKeyRef: { name: string; key: string } };
  resources?: V1ResourceRequirements;
}

export interface AgentPoolStatus {
  observedGeneration?: number;
  replicas?: number;
  readyReplicas?: number;
  /** Label selector of the pool's pods, for the scale subresource and HPAs. */
  selector?: string;
  busy?: number;
  queueDepth?: number;
  tokens?: number;
  costUSD?: number;
  /** Ready, Degraded. */
  conditions?: Condition[];
}

export interface AgentPool extends KubeObject {
  spec: AgentPoolSpec;
  status?: AgentPoolStatus;
}

export const AgentPools = resourceType<AgentPool>(GROUP, VERSION, 'AgentPool', 'agentpools');
