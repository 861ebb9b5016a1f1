/**
 * Test fixtures of the company: the sample company's pools on the simulated provider served
 * over real HTTP. Tests only; production code never imports this.
 */
import { BudgetAction, type SubmitProject, type WorkflowPhase } from '@troupe/proto';
import type { PoolResource } from './pools.js';

export const SIM_PRICES = [
  { model: 'sim-large', inputPerMTokUSD: 3, outputPerMTokUSD: 15 },
  { model: 'sim-small', inputPerMTokUSD: 0.25, outputPerMTokUSD: 1.25 },
];

/** One pool per role of the built-in workflow, in `namespace`. */
export function samplePools(namespace: string): PoolResource[] {
  const roles: [string, string][] = [
    ['pm', 'sim-large'],
    ['architect', 'sim-large'],
    ['developer', 'sim-small'],
    ['qa', 'sim-large'],
    ['writer', 'sim-small'],
    ['devops', 'sim-small'],
  ];
  return roles.map(([role, model]) => ({
    namespace,
    name: role === 'developer' ? 'developers' : role,
    replicas: 1,
    spec: { role, model: { provider: 'simulated', name: model, maxOutputTokens: 512 }, concurrency: 8 },
  }));
}

/** A SubmitProject command as the operator would send it. */
export function submitCommand(
  namespace: string,
  name: string,
  overrides: {
    /** metadata.uid of the Project (default: one per namespace and name). */
    uid?: string;
    approvals?: string[];
    approvalTimeout?: string;
    maxCostUSD?: number;
    onExceeded?: BudgetAction;
    workflow?: { name: string; phases: WorkflowPhase[] };
  } = {},
): SubmitProject {
  return {
    namespace,
    name,
    uid: overrides.uid ?? `${namespace}-${name}-uid`,
    generation: 1,
    spec: {
      client: namespace,
      brief: 'An online storefront for camping gear: catalogue with search, cart, checkout by card, and an admin area.',
      workflow: overrides.workflow?.name ?? 'software-delivery',
      deliverables: [],
      budget: { maxCostUsd: overrides.maxCostUSD ?? 5, onExceeded: overrides.onExceeded ?? BudgetAction.PAUSE },
      pools: {},
      approvals: overrides.approvals ?? [],
      approvalTimeout: overrides.approvalTimeout ?? '',
      suspend: false,
    },
    workflowPhases: overrides.workflow?.phases ?? [],
  };
}
