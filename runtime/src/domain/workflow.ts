/**
 * Workflows: the company's standard operating procedures. A workflow is an ordered list of
 * phases, each done by one role; a fan-out phase is split by a planner into parallel tasks, and
 * a phase with a loop sends the work back to an earlier phase until it passes.
 */

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

/** The phases of a built-in workflow, or undefined when `name` is not one. */
export function builtInWorkflow(name: string): readonly PhaseDefinition[] | undefined {
  return BUILT_IN[name];
}
