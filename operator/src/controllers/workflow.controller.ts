/**
 * Workflow controller: Ready once the operator has checked what the CRD's CEL rules cannot —
 * that `needs` form no cycle and loops go back to phases the looping phase depends on; else
 * Ready=False with a reason, and a message that names the cycle.
 */
import { Workflows, type Workflow } from '../api/v1alpha1/workflow.types.js';
import type { Controller, Reconciler, ReconcileResult } from '../kube/controller.js';
import type { KindRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import type { Manager } from '../kube/manager.js';
import { splitKey, type ObjectKey } from '../kube/types.js';
import { ConditionType, WorkflowReason, findCondition, setCondition, type DesiredCondition } from './conditions.js';
import { updateStatus } from './status.js';
import { validatePhases } from './workflow.graph.js';

/** Ready as the phase graph decides it. */
export function workflowReadiness(workflow: Workflow): DesiredCondition {
  const observedGeneration = workflow.metadata.generation;
  const problem = validatePhases(workflow.spec.phases);
  if (problem !== undefined) return { type: ConditionType.Ready, status: 'False', ...problem, observedGeneration };
  const count = workflow.spec.phases.length;
  return {
    type: ConditionType.Ready,
    status: 'True',
    reason: WorkflowReason.PhasesValid,
    message: `${count} phase${count === 1 ? '' : 's'}, no cycles`,
    observedGeneration,
  };
}

export class WorkflowReconciler implements Reconciler {
  private readonly workflows: Informer<Workflow>;
  private readonly events: KindRecorder;

  constructor(private readonly manager: Manager) {
    this.workflows = manager.informer(Workflows);
    this.events = manager.eventsFor(Workflows);
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const workflow = this.workflows.get(namespace, name);
    if (workflow === undefined || workflow.metadata.deletionTimestamp !== undefined) return {};
    const ready = workflowReadiness(workflow);
    const previous = findCondition(workflow.status?.conditions, ConditionType.Ready);
    const conditions = setCondition(workflow.status?.conditions, ready, new Date(this.manager.options.clock.now()));
    await updateStatus(this.manager.client, Workflows, workflow, {
      ...workflow.status,
      observedGeneration: workflow.metadata.generation,
      conditions,
    });
    if (previous?.status !== ready.status || previous.message !== ready.message) {
      if (ready.status === 'True') this.events.normal(workflow, ready.reason, ready.message);
      else this.events.warning(workflow, ready.reason, ready.message);
    }
    return {};
  }

  setupWithManager(manager: Manager): Controller<Workflow> {
    return manager.controller({ name: 'workflow', primary: this.workflows, reconciler: this, recorder: this.events });
  }
}
