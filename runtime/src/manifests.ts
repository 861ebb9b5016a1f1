/**
 * Reads Troupe manifests (the YAML a platform team applies with kubectl) into what the
 * embedded runtime runs: model providers, agent pools and project submissions. Embedded mode
 * uses it in place of the API server and the operator's reconcilers.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BudgetAction, Deliverable, type SubmitProject } from '@troupe/proto';
import { parseAllDocuments } from 'yaml';
import type { PoolResource } from './domain/pools.js';
import { RuntimeError, RuntimeErrorCode } from './errors.js';
import type { ModelProviderSpec } from './llm/providers/create-provider.js';

export interface Manifests {
  providers: { namespace: string; name: string; spec: ModelProviderSpec }[];
  pools: PoolResource[];
  projects: SubmitProject[];
}

interface Resource {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; generation?: number };
  spec?: Record<string, unknown>;
}

const DELIVERABLES: Readonly<Record<string, Deliverable>> = {
  requirements: Deliverable.REQUIREMENTS,
  architecture: Deliverable.ARCHITECTURE,
  code: Deliverable.CODE,
  tests: Deliverable.TESTS,
  docs: Deliverable.DOCS,
  deployment: Deliverable.DEPLOYMENT,
};

/** Every troupe.dev resource in a file or the *.yaml files of a directory (sorted by name). */
export function readManifests(path: string): Manifests {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
        .sort()
        .map((name) => join(path, name))
    : [path];
  const manifests: Manifests = { providers: [], pools: [], projects: [] };
  for (const file of files) {
    for (const document of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (document.errors.length > 0) throw invalid(file, `is not valid YAML: ${document.errors[0]?.message}`);
      const resource = document.toJS() as Resource | null;
      if (resource === null || resource.apiVersion !== 'troupe.dev/v1alpha1') continue;
      add(manifests, resource, file);
    }
  }
  return manifests;
}

function add(manifests: Manifests, resource: Resource, file: string): void {
  const name = resource.metadata?.name;
  const namespace = resource.metadata?.namespace ?? 'default';
  if (!name) throw invalid(file, `a ${resource.kind} has no metadata.name`);
  const spec = resource.spec ?? {};
  const where = `${resource.kind} ${namespace}/${name} in ${file}`;
  switch (resource.kind) {
    case 'ModelProvider':
      manifests.providers.push({ namespace, name, spec: spec as unknown as ModelProviderSpec });
      return;
    case 'AgentPool': {
      const model = spec.model as { provider?: string; name?: string; temperature?: number; maxOutputTokens?: number } | undefined;
      if (typeof spec.role !== 'string') throw invalid(where, 'spec.role is required');
      if (!model?.provider || !model.name) throw invalid(where, 'spec.model.provider and spec.model.name are required');
      manifests.pools.push({
        namespace,
        name,
        replicas: typeof spec.replicas === 'number' ? spec.replicas : 1,
        spec: {
          role: spec.role,
          model: { provider: model.provider, name: model.name, temperature: model.temperature, maxOutputTokens: model.maxOutputTokens },
          concurrency: typeof spec.concurrency === 'number' ? spec.concurrency : 4,
          ...(typeof spec.systemPrompt === 'string' ? { systemPrompt: spec.systemPrompt } : {}),
        },
      });
      return;
    }
    case 'Project': {
      const budget = spec.budget as { maxCostUSD?: number; maxTokens?: number; onExceeded?: string } | undefined;
      if (typeof spec.client !== 'string') throw invalid(where, 'spec.client is required');
      if (typeof spec.brief !== 'string') throw invalid(where, 'spec.brief is required');
      if (typeof budget?.maxCostUSD !== 'number') throw invalid(where, 'spec.budget.maxCostUSD is required');
      const deliverables = ((spec.deliverables as string[] | undefined) ?? []).map((item) => {
        const code = DELIVERABLES[item];
        if (code === undefined) throw invalid(where, `spec.deliverables has an unknown value ${JSON.stringify(item)}`);
        return code;
      });
      manifests.projects.push({
        namespace,
        name,
        uid: resource.metadata?.uid ?? `${namespace}/${name}`,
        generation: resource.metadata?.generation ?? 1,
        spec: {
          client: spec.client,
          brief: spec.brief,
          workflow: typeof spec.workflow === 'string' ? spec.workflow : 'software-delivery',
          deliverables,
          budget: {
            maxCostUsd: budget.maxCostUSD,
            ...(budget.maxTokens === undefined ? {} : { maxTokens: budget.maxTokens }),
            onExceeded: budget.onExceeded === 'Fail' ? BudgetAction.FAIL : BudgetAction.PAUSE,
          },
          pools: (spec.pools as Record<string, string> | undefined) ?? {},
          approvals: (spec.approvals as string[] | undefined) ?? [],
          ...(typeof spec.priority === 'number' ? { priority: spec.priority } : {}),
          ...(typeof spec.deadline === 'string' ? { deadline: Date.parse(spec.deadline) } : {}),
          suspend: spec.suspend === true,
        },
        // npm start submits its projects itself, and the sample project runs a built-in workflow.
        workflowPhases: [],
      });
      return;
    }
    default:
      return;
  }
}

function invalid(where: string, problem: string): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidArgument, `${where} ${problem}`);
}
