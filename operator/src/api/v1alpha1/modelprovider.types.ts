/** ModelProvider (short name `mp`): an LLM endpoint, its API key Secret and prices; see crds/modelprovider.yaml. */
import { resourceType } from '../../kube/client.js';
import type { Condition, KubeObject } from '../../kube/types.js';
import { GROUP, VERSION } from './groupversion.js';

export type ProviderType = 'openai' | 'anthropic' | 'ollama' | 'simulated';

export interface ModelProviderSpec {
  type: ProviderType;
  baseURL?: string;
  /** Required for openai and anthropic (a CEL rule of the CRD). */
  apiKeySecretRef?: { name: string; key: string };
  pricing?: { model: string; inputPerMTokUSD: number; outputPerMTokUSD: number }[];
  simulated?: { latencyMs?: number; tokensPerSecond?: number; seed?: number };
}

export interface ModelProviderStatus {
  observedGeneration?: number;
  /** Ready. */
  conditions?: Condition[];
}

export interface ModelProvider extends KubeObject {
  spec: ModelProviderSpec;
  status?: ModelProviderStatus;
}

export const ModelProviders = resourceType<ModelProvider>(GROUP, VERSION, 'ModelProvider', 'modelproviders');
