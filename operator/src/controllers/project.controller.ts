/**
 * Project controller: hands each spec generation to the runtime (SubmitProject, with the
 * deterministic command id `submit/<uid>/<generation>`), releases approval gates named by the
 * `troupe.dev/approve` annotation (command id `approve/<uid>/<phase>`), and cancels the project
 * in the runtime when the resource is deleted (a finalizer, added before anything is submitted
 * and removed last). Status comes from the runtime — WatchProject streams say when to look,
 * GetProject says what is — and is written at most once per project per status interval. A
 * project not finished is also looked at every poll interval, whatever its stream says: a stream
 * can go quiet without ending (its runtime node stopped reading `troupe.events`, say).
 */
import { ProjectPhase as PhaseCode, type ProjectStatus as RuntimeStatus } from '@troupe/proto';
import { APPROVE_ANNOTATION, PROJECT_FINALIZER, Projects, type Project, type ProjectStatus } from '../api/v1alpha1/project.types.js';
import { Workflows, type Workflow } from '../api/v1alpha1/workflow.types.js';
import type { RuntimeClient } from '../clients/runtime.js';
import { OperatorError, OperatorErrorCode, TerminalError, checkOption, isPositiveInteger } from '../errors.js';
import type { Controller, Reconciler, ReconcileResult } from '../kube/controller.js';
import type { KindRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import type { Manager } from '../kube/manager.js';
import { keyOf, splitKey, type ObjectKey } from '../kube/types.js';
import { ConditionType, ProjectReason, findCondition, setCondition, type DesiredCondition } from './conditions.js';
import { commandIds, isFinal, submitCommand, syncedStatus } from './project.mapping.js';
import { ProjectStreams } from './project.streams.js';
import { StatusGate } from './status-gate.js';
import { updateStatus } from './status.js';

/** The workflow a project runs when its spec names none (the CRD's default). */
const DEFAULT_WORKFLOW = 'software-delivery';

export interface ProjectReconcilerOptions {
  runtime: RuntimeClient;
  /** At most one status write per project per this interval (default 500 ms). */
  statusIntervalMs: number;
  /** How soon to look again at an accepted project the runtime does not know yet (default 1 s). */
  unknownRetryMs: number;
  /** How often a project not finished is looked at even when its stream says nothing (default 60 s). */
  pollMs: number;
}

export const PROJECT_RECONCILER_DEFAULTS = {
  statusIntervalMs: 500,
  unknownRetryMs: 1_000,
  pollMs: 60_000,
} as const satisfies Partial<ProjectReconcilerOptions>;

export class ProjectReconciler implements Reconciler {
  readonly options: ProjectReconcilerOptions;
  private readonly projects: Informer<Project>;
  private readonly workflows: Informer<Workflow>;
  private readonly events: KindRecorder;
  private readonly streams: ProjectStreams;
  private readonly gate: StatusGate;
  private controller: Controller<Project> | undefined;

  constructor(
    private readonly manager: Manager,
    options: Pick<ProjectReconcilerOptions, 'runtime'> & Partial<ProjectReconcilerOptions>,
  ) {
    this.options = { ...PROJECT_RECONCILER_DEFAULTS, ...options };
    for (const key of ['unknownRetryMs', 'pollMs'] as const)
      checkOption(isPositiveInteger(this.options[key]), 'ProjectReconciler', key, 'must be a positive integer', this.options[key]);
    this.projects = manager.informer(Projects);
    this.workflows = manager.informer(Workflows);
    this.events = manager.eventsFor(Projects);
    this.gate = new StatusGate(this.options.statusIntervalMs, manager.options.clock);
    this.streams = new ProjectStreams({
      runtime: this.options.runtime,
      onChange: (key) => this.controller?.enqueue(key),
      clock: manager.options.clock,
      log: manager.log.with({ component: 'project-streams' }),
    });
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const cached = this.projects.get(namespace, name);
    if (cached === undefined) {
      this.streams.close(key);
      this.gate.forget(key);
      return {};
    }
    if (cached.metadata.deletionTimestamp !== undefined) return this.finalize(key, cached);
    const wait = this.gate.delay(key);
    if (wait > 0) return { requeueAfterMs: wait };

    const project = await this.ensureFinalizer(cached);
    const generation = project.metadata.generation ?? 0;
    const status = project.status ?? {};
    if (status.observedGeneration !== generation) {
      const blocked = this.workflowProblem(project);
      if (blocked !== undefined) {
        await this.write(key, project, this.accepted(project, 'False', ProjectReason.WorkflowNotReady, blocked));
        return {};
      }
      return this.submit(key, project);
    }
    // Refused for this generation, and no earlier one runs: nothing to do until the spec changes.
    if (findCondition(status.conditions, ConditionType.Accepted)?.reason === ProjectReason.RuntimeRejected && !runsInRuntime(status))
      return {};
    return this.sync(key, project);
  }

  /**
   * Registers the controller: projects on their own changes, on changes of the Workflow they
   * name, and on every update of their WatchProject streams.
   */
  setupWithManager(manager: Manager): Controller<Project> {
    this.controller = manager
      .controller({ name: 'project', primary: this.projects, reconciler: this, recorder: this.events })
      .watches(this.workflows, (workflow) =>
        this.projects
          .list(workflow.metadata.namespace ?? '')
          .filter((project) => (project.spec.workflow ?? DEFAULT_WORKFLOW) === workflow.metadata.name)
          .map(keyOf),
      );
    manager.add(this.streams);
    return this.controller;
  }

  private async submit(key: ObjectKey, project: Project): Promise<ReconcileResult> {
    const generation = project.metadata.generation ?? 0;
    // Watching first: the runtime may act on the submit (and say why) before the call returns.
    this.streams.open(key);
    try {
      const workflow = this.workflows.get(project.metadata.namespace ?? '', project.spec.workflow ?? DEFAULT_WORKFLOW);
      await this.options.runtime.submitProject(commandIds.submit(project), submitCommand(project, workflow));
    } catch (error) {
      this.streams.close(key);
      if (!(error instanceof OperatorError)) throw error;
      if (error.code === OperatorErrorCode.RuntimeRejected) return this.refused(key, project, error);
      const reason = error.code === OperatorErrorCode.RuntimeForbidden ? ProjectReason.RuntimeForbidden : ProjectReason.RuntimeUnavailable;
      await this.write(key, project, this.accepted(project, 'Unknown', reason, `the runtime did not take the project: ${error.message}`));
      throw error;
    }
    this.events.normal(project, ProjectReason.Submitted, `handed generation ${generation} to the runtime`);
    const accepted: ProjectStatus = {
      ...this.accepted(project, 'True', ProjectReason.Submitted, `generation ${generation} queued in the runtime`),
      observedGeneration: generation,
    };
    // The runtime has usually applied the submit by now: reading it back makes one status write of two.
    try {
      return await this.sync(key, project, accepted);
    } catch (error) {
      await this.write(key, project, accepted);
      throw error;
    }
  }

  /**
   * The runtime refused the spec's generation. A project it runs (or ran) from an earlier one
   * goes on as it was, and its status keeps following it; one it never took has failed.
   */
  private async refused(key: ObjectKey, project: Project, error: OperatorError): Promise<ReconcileResult> {
    const generation = project.metadata.generation ?? 0;
    const { namespace, name } = splitKey(key);
    const refused = { ...this.accepted(project, 'False', ProjectReason.RuntimeRejected, error.message), observedGeneration: generation };
    if ((await this.options.runtime.getProject(namespace, name)) !== undefined) {
      this.events.warning(
        project,
        ProjectReason.RuntimeRejected,
        `generation ${generation} refused; the runtime goes on with the one before: ${error.message}`,
      );
      return this.sync(key, project, refused);
    }
    await this.write(key, project, { ...refused, phase: 'Failed' });
    throw new TerminalError(ProjectReason.RuntimeRejected, error.message, { cause: error });
  }

  /** Writes `base` (the stored status, or the one a submit just decided) updated from the runtime's view. */
  private async sync(key: ObjectKey, project: Project, base: ProjectStatus = project.status ?? {}): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const runtime = await this.options.runtime.getProject(namespace, name);
    // The submit is durably queued before the runtime applies it; until then it knows nothing.
    if (runtime === undefined) {
      await this.write(key, project, base);
      return { requeueAfterMs: this.options.unknownRetryMs };
    }
    await this.approveIfAsked(project, runtime);
    const status = project.status ?? {};
    const next = syncedStatus(
      { ...project, status: base },
      runtime,
      this.streams.lastChange(key),
      new Date(this.manager.options.clock.now()),
    );
    await this.write(key, project, next);
    if (next.phase !== status.phase && next.phase !== undefined) {
      const message = `phase ${status.phase ?? 'none'} → ${next.phase}${next.currentPhase ? ` (workflow phase ${next.currentPhase})` : ''}`;
      if (next.phase === 'Failed') this.events.warning(project, next.phase, message);
      else this.events.normal(project, next.phase, message);
    }
    if (isFinal(next.phase)) {
      this.streams.close(key);
      return {};
    }
    this.streams.open(key);
    return { requeueAfterMs: this.options.pollMs };
  }

  /** Approves the gate the annotation names once the runtime waits on it; the command id makes repeats harmless. */
  private async approveIfAsked(project: Project, runtime: RuntimeStatus): Promise<void> {
    const phase = project.metadata.annotations?.[APPROVE_ANNOTATION];
    if (phase === undefined || phase === '') return;
    if (!(project.spec.approvals ?? []).includes(phase)) {
      this.events.warning(project, ProjectReason.UnknownApprovalPhase, `${APPROVE_ANNOTATION}=${phase} names no phase of spec.approvals`);
      return;
    }
    if (runtime.phase !== PhaseCode.AWAITING_APPROVAL || runtime.currentPhase !== phase) return;
    const { namespace = '', name } = project.metadata;
    try {
      await this.options.runtime.approve(commandIds.approve(project, phase), {
        namespace,
        name,
        phase,
        approvedBy: `annotation ${APPROVE_ANNOTATION}`,
      });
      this.events.normal(project, ProjectReason.Approved, `approved phase ${phase}`);
    } catch (error) {
      if (!(error instanceof OperatorError && error.code === OperatorErrorCode.RuntimeRejected)) throw error;
      this.events.warning(project, ProjectReason.ApprovalRefused, error.message);
    }
  }

  /** Cancels the project in the runtime, then lets the deletion proceed. */
  private async finalize(key: ObjectKey, project: Project): Promise<ReconcileResult> {
    if (!(project.metadata.finalizers ?? []).includes(PROJECT_FINALIZER)) return {};
    const status = project.status ?? {};
    if (!isFinal(status.phase)) {
      const { namespace = '', name } = project.metadata;
      try {
        await this.options.runtime.cancelProject(commandIds.cancel(project), {
          namespace,
          name,
          reason: 'the Project resource was deleted',
        });
        this.events.normal(project, ProjectReason.Cancelled, 'cancelled in the runtime');
      } catch (error) {
        // A refusal means there is nothing to cancel; an unreachable runtime only matters if it ever had the project.
        const refused = error instanceof OperatorError && error.code === OperatorErrorCode.RuntimeRejected;
        if (!refused && runsInRuntime(status)) {
          if (error instanceof OperatorError && error.code === OperatorErrorCode.RuntimeForbidden) {
            this.events.warning(
              project,
              ProjectReason.RuntimeForbidden,
              `the deletion waits to cancel the project in the runtime: ${error.message}`,
            );
          }
          throw error;
        }
      }
    }
    this.streams.close(key);
    this.gate.forget(key);
    const finalizers = (project.metadata.finalizers ?? []).filter((finalizer) => finalizer !== PROJECT_FINALIZER);
    const { namespace = '', name, resourceVersion } = project.metadata;
    await this.manager.client.patch(Projects, namespace, name, { metadata: { finalizers, resourceVersion } }, { strategy: 'merge' });
    return {};
  }

  /** Adds the finalizer before the runtime hears of the project, so that a delete always cancels it. */
  private async ensureFinalizer(project: Project): Promise<Project> {
    const finalizers = project.metadata.finalizers ?? [];
    if (finalizers.includes(PROJECT_FINALIZER)) return project;
    const { namespace = '', name, resourceVersion } = project.metadata;
    return this.manager.client.patch(
      Projects,
      namespace,
      name,
      { metadata: { finalizers: [...finalizers, PROJECT_FINALIZER], resourceVersion } },
      { strategy: 'merge' },
    );
  }

  /** Why the project's Workflow (if it is a resource in the namespace) is not usable yet. */
  private workflowProblem(project: Project): string | undefined {
    const name = project.spec.workflow ?? DEFAULT_WORKFLOW;
    const workflow = this.workflows.get(project.metadata.namespace ?? '', name);
    if (workflow === undefined) return undefined;
    const ready = findCondition(workflow.status?.conditions, ConditionType.Ready);
    if (ready?.status === 'True' && ready.observedGeneration === workflow.metadata.generation) return undefined;
    return `Workflow ${name} is not Ready${ready?.status === 'False' ? `: ${ready.message}` : ' yet'}`;
  }

  /** The status with Accepted set, and Pending as the phase until the runtime reports one. */
  private accepted(project: Project, status: DesiredCondition['status'], reason: string, message: string): ProjectStatus {
    const current = project.status ?? {};
    const condition: DesiredCondition = {
      type: ConditionType.Accepted,
      status,
      reason,
      message,
      observedGeneration: project.metadata.generation,
    };
    return {
      ...current,
      phase: current.phase ?? 'Pending',
      conditions: setCondition(current.conditions, condition, new Date(this.manager.options.clock.now())),
    };
  }

  private async write(key: ObjectKey, project: Project, status: ProjectStatus): Promise<void> {
    const written = await updateStatus(this.manager.client, Projects, project, status);
    if (written !== project) this.gate.wrote(key);
  }
}

/** Whether the runtime runs the project: it took a generation (the latest, or one before a refused edit) that has not ended. */
function runsInRuntime(status: ProjectStatus): boolean {
  const accepted = findCondition(status.conditions, ConditionType.Accepted);
  return !isFinal(status.phase) && (accepted?.status === 'True' || accepted?.reason === ProjectReason.RuntimeRejected);
}
