/**
 * Checks of a Workflow's phase graph that CEL cannot express: `needs` must form no cycle, and a
 * loop may only go back to a phase the looping phase depends on. Pure, so the tests need no
 * cluster.
 */
import type { WorkflowPhase } from '../api/v1alpha1/workflow.types.js';
import { WorkflowReason } from './conditions.js';

/** Why a phase graph is refused, as a condition reason and message. */
export interface GraphProblem {
  reason: (typeof WorkflowReason)['NeedsCycle' | 'LoopNotBackward'];
  message: string;
}

/**
 * A cycle of `needs`, as the phase names along it with the first repeated at the end
 * (`['a', 'b', 'a']`), or undefined. Needs naming no phase are ignored (the CRD refuses them).
 */
export function findNeedsCycle(phases: readonly WorkflowPhase[]): string[] | undefined {
  const needs = new Map(phases.map((phase) => [phase.name, phase.needs ?? []]));
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done' || !needs.has(name)) return undefined;
    if (state.get(name) === 'visiting') return [...path.slice(path.indexOf(name)), name];
    state.set(name, 'visiting');
    path.push(name);
    for (const next of needs.get(name) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const phase of phases) {
    const cycle = visit(phase.name);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

/** Every phase `name` needs, directly or through others. */
function ancestors(phases: readonly WorkflowPhase[], name: string): Set<string> {
  const needs = new Map(phases.map((phase) => [phase.name, phase.needs ?? []]));
  const seen = new Set<string>();
  const stack = [...(needs.get(name) ?? [])];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (seen.has(next)) continue;
    seen.add(next);
    stack.push(...(needs.get(next) ?? []));
  }
  return seen;
}

/** The first problem of the graph, or undefined when projects can be planned through it. */
export function validatePhases(phases: readonly WorkflowPhase[]): GraphProblem | undefined {
  const cycle = findNeedsCycle(phases);
  if (cycle !== undefined) {
    return { reason: WorkflowReason.NeedsCycle, message: `spec.phases[].needs form a cycle: ${cycle.join(' → ')} (each needs the next)` };
  }
  for (const phase of phases) {
    if (phase.loop !== undefined && !ancestors(phases, phase.name).has(phase.loop.backTo)) {
      return {
        reason: WorkflowReason.LoopNotBackward,
        message: `phase ${phase.name} loops back to ${phase.loop.backTo}, which it does not need (directly or through other phases)`,
      };
    }
  }
  return undefined;
}
