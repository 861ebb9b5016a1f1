/** The Workflow checks CEL cannot do, without a cluster. */
import { describe, expect, it } from 'vitest';
import type { WorkflowPhase } from '../api/v1alpha1/workflow.types.js';
import { findNeedsCycle, validatePhases } from './workflow.graph.js';

const phase = (name: string, needs: string[] = [], loop?: WorkflowPhase['loop']): WorkflowPhase => ({
  name,
  role: 'developer',
  needs,
  ...(loop ? { loop } : {}),
});

/** The built-in software-delivery workflow, as architecture.md describes it. */
const SOFTWARE_DELIVERY = [
  phase('requirements'),
  phase('architecture', ['requirements']),
  phase('implementation', ['architecture']),
  phase('review', ['implementation'], { backTo: 'implementation', maxIterations: 3 }),
  phase('docs', ['review']),
  phase('delivery', ['docs']),
];

describe('workflow phase graph', () => {
  it('accepts the built-in software-delivery workflow, loop included', () => {
    expect(validatePhases(SOFTWARE_DELIVERY)).toBeUndefined();
  });

  it('names the phases of a needs cycle, in order, closing where it started', () => {
    const phases = [phase('plan'), phase('build', ['plan', 'test']), phase('test', ['ship']), phase('ship', ['build'])];
    expect(findNeedsCycle(phases)).toEqual(['build', 'test', 'ship', 'build']);
    expect(validatePhases(phases)).toEqual({
      reason: 'NeedsCycle',
      message: 'spec.phases[].needs form a cycle: build → test → ship → build (each needs the next)',
    });
  });

  it('finds a cycle of two and accepts diamonds, which are not cycles', () => {
    expect(findNeedsCycle([phase('a'), phase('b', ['c']), phase('c', ['b'])])).toEqual(['b', 'c', 'b']);
    expect(findNeedsCycle([phase('a'), phase('b', ['a']), phase('c', ['a']), phase('d', ['b', 'c'])])).toBeUndefined();
  });

  it('refuses a loop back to a phase the looping phase does not depend on', () => {
    const phases = [phase('a'), phase('b', ['a'], { backTo: 'c', maxIterations: 2 }), phase('c', ['b'])];
    expect(validatePhases(phases)).toEqual({
      reason: 'LoopNotBackward',
      message: 'phase b loops back to c, which it does not need (directly or through other phases)',
    });
  });
});
