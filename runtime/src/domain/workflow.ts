/**
 * Workflows: the company's standard operating procedures. A workflow is an ordered list of
 * phases, each done by one role; a fan-out phase is split by a planner into parallel tasks, and
 * a phase with a loop sends the work back to an earlier phase until it passes.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';

export interface PhaseDefinition {
  name: string;
  role: string;
  /** Phases that must be done first; the list is kept in an order that honours them. */
  needs: readonly string[];
  /** Deliverable kinds the phase produces. */
  produces: readonly string[];
  /** A planner splits the phase into parallel tasks. */
  fanOut: boolean;
  /** The phase waits for a human before the next starts (also when the project lists it in approvals). */
  approval: boolean;
  /** When the phase's verdict is "not yet", the work goes back to `backTo`, at most `maxIterations` times. */
  loop?: { backTo: string; maxIterations: number };
}

/** The built-in `software-delivery` workflow. */
export const SOFTWARE_DELIVERY: readonly PhaseDefinition[] = [
  { name: 'requirements', role: 'pm', needs: [], produces: ['requirements'], fanOut: false, approval: false },
  { name: 'architecture', role: 'architect', needs: ['requirements'], produces: ['architecture'], fanOut: false, approval: false },
  { name: 'implementation', role: 'developer', needs: ['architecture'], produces: ['code'], fanOut: true, approval: false },
  {
    name: 'review',
    role: 'qa',
    needs: ['implementation'],
    produces: ['tests'],
    fanOut: false,
    approval: false,
    loop: { backTo: 'implementation', maxIterations: 3 },
  },
  { name: 'docs', role: 'writer', needs: ['review'], produces: ['docs'], fanOut: false, approval: false },
  { name: 'delivery', role: 'devops', needs: ['docs'], produces: ['deployment'], fanOut: false, approval: false },
];

const BUILT_IN: Readonly<Record<string, readonly PhaseDefinition[]>> = { 'software-delivery': SOFTWARE_DELIVERY };

const DELIVERABLE_KINDS: ReadonlySet<string> = new Set(['requirements', 'architecture', 'code', 'tests', 'docs', 'deployment']);

/** The phases of a built-in workflow, or undefined when `name` is not one. */
export function builtInWorkflow(name: string): readonly PhaseDefinition[] | undefined {
  return BUILT_IN[name];
}

/**
 * The phases of a Workflow resource, in an order that honours `needs` (phases that could run in
 * either order keep the order they were given in). Refuses, naming the phase, what a project
 * could not be planned through: duplicate names, an unknown deliverable kind, needs naming no
 * phase or forming a cycle, and a loop back to a phase the looping phase does not need.
 */
export function definedWorkflow(phases: readonly PhaseDefinition[]): PhaseDefinition[] {
  const invalid = (message: string) => new RuntimeError(RuntimeErrorCode.InvalidArgument, `workflow_phases: ${message}`);
  if (phases.length === 0) throw invalid('a workflow needs at least one phase');
  const byName = new Map<string, PhaseDefinition>();
  for (const phase of phases) {
    if (phase.name === '' || phase.role === '') throw invalid('every phase needs a name and a role');
    if (byName.has(phase.name)) throw invalid(`phase ${phase.name} is defined twice`);
    const unknown = phase.produces.find((kind) => !DELIVERABLE_KINDS.has(kind));
    if (unknown !== undefined) throw invalid(`phase ${phase.name} produces "${unknown}", which is not a deliverable kind`);
    byName.set(phase.name, phase);
  }
  const ordered: PhaseDefinition[] = [];
  const placed = new Set<string>();
  const visiting = new Set<string>();
  const place = (phase: PhaseDefinition): void => {
    if (placed.has(phase.name)) return;
    if (visiting.has(phase.name)) throw invalid(`the needs of phase ${phase.name} form a cycle`);
    visiting.add(phase.name);
    for (const need of phase.needs) {
      const needed = byName.get(need);
      if (needed === undefined) throw invalid(`phase ${phase.name} needs ${need}, which is not a phase of the workflow`);
      place(needed);
    }
    visiting.delete(phase.name);
    placed.add(phase.name);
    ordered.push(phase);
  };
  phases.forEach(place);
  for (const phase of ordered) {
    if (phase.loop === undefined) continue;
    if (!needsTransitively(byName, phase.name, phase.loop.backTo))
      throw invalid(`phase ${phase.name} loops back to ${phase.loop.backTo}, which it does not need`);
    if (!(phase.loop.maxIterations >= 1))
      throw invalid(`phase ${phase.name} must loop at least once, got maxIterations ${phase.loop.maxIterations}`);
  }
  return ordered;
}

function needsTransitively(byName: ReadonlyMap<string, PhaseDefinition>, from: string, target: string): boolean {
  const stack = [...(byName.get(from)?.needs ?? [])];
  const seen = new Set<string>();
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (next === target) return true;
    if (seen.has(next)) continue;
    seen.add(next);
    stack.push(...(byName.get(next)?.needs ?? []));
  }
  return false;
}
