/**
 * Between the Project resource and the runtime's protobuf messages: the SubmitProject command
 * for a spec, and the resource's status from the runtime's ProjectStatus. Pure, so the tests
 * need neither a cluster nor a runtime.
 */
import {
  BudgetAction,
  Deliverable as DeliverableCode,
  ProjectPhase as PhaseCode,
  type Event,
  type ProjectStatus as RuntimeStatus,
  type SubmitProject,
} from '@troupe/proto';
import {
  APPROVE_ANNOTATION,
  type Deliverable,
  type Project,
  type ProjectPhase,
  type ProjectStatus,
} from '../api/v1alpha1/project.types.js';
import type { Workflow } from '../api/v1alpha1/workflow.types.js';
import type { Condition } from '../kube/types.js';
import { ConditionType, ProjectReason, rfc3339, setCondition, type DesiredCondition } from './conditions.js';

const DELIVERABLES: Record<Deliverable, DeliverableCode> = {
  requirements: DeliverableCode.REQUIREMENTS,
  architecture: DeliverableCode.ARCHITECTURE,
  code: DeliverableCode.CODE,
  tests: DeliverableCode.TESTS,
  docs: DeliverableCode.DOCS,
  deployment: DeliverableCode.DEPLOYMENT,
};

const PHASES: Readonly<Record<number, ProjectPhase>> = {
  [PhaseCode.PENDING]: 'Pending',
  [PhaseCode.PLANNING]: 'Planning',
  [PhaseCode.RUNNING]: 'Running',
  [PhaseCode.AWAITING_APPROVAL]: 'AwaitingApproval',
  [PhaseCode.PAUSED]: 'Paused',
  [PhaseCode.DELIVERED]: 'Delivered',
  [PhaseCode.FAILED]: 'Failed',
};

/** The condition types a Project's status holds (architecture.md). */
const PROJECT_CONDITIONS: ReadonlySet<string> = new Set([
  ConditionType.Accepted,
  ConditionType.Running,
  ConditionType.AwaitingApproval,
  ConditionType.BudgetExceeded,
  ConditionType.Delivered,
  ConditionType.Failed,
]);

/** The CRD's pattern for reasons; anything else the runtime sends would make the status write fail. */
const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const SHA256 = /^[a-f0-9]{64}$/;
/** The CRD's maxItems of status.artifacts. */
const MAX_ARTIFACTS = 1000;

/** Idempotency keys: the same decision about the same object always sends the same command id. */
export const commandIds = {
  submit: (project: Project) => `submit/${project.metadata.uid}/${project.metadata.generation}`,
  cancel: (project: Project) => `cancel/${project.metadata.uid}`,
  approve: (project: Project, phase: string) => `approve/${project.metadata.uid}/${phase}`,
};

/**
 * The SubmitProject command for the project's current spec and generation, carrying the phases
 * of `workflow` when spec.workflow names a Workflow resource of the namespace.
 */
export function submitCommand(project: Project, workflow?: Workflow): SubmitProject {
  const { spec } = project;
  const git = spec.delivery?.git;
  return {
    namespace: project.metadata.namespace ?? '',
    name: project.metadata.name,
    uid: project.metadata.uid ?? '',
    generation: project.metadata.generation ?? 0,
    spec: {
      client: spec.client,
      brief: spec.brief,
      workflow: spec.workflow ?? '',
      deliverables: (spec.deliverables ?? []).map((deliverable) => DELIVERABLES[deliverable]),
      budget: {
        maxCostUsd: spec.budget.maxCostUSD,
        maxTokens: spec.budget.maxTokens,
        onExceeded: spec.budget.onExceeded === 'Fail' ? BudgetAction.FAIL : BudgetAction.PAUSE,
      },
      pools: { ...spec.pools },
      approvals: [...(spec.approvals ?? [])],
      approvalTimeout: spec.approvalTimeout ?? '',
      priority: spec.priority,
      deadline: spec.deadline === undefined ? undefined : Date.parse(spec.deadline),
      suspend: spec.suspend ?? false,
      delivery:
        git === undefined
          ? undefined
          : { git: { url: git.url, branch: git.branch ?? '', secretRef: git.secretRef && { name: git.secretRef.name, key: '' } } },
      notify:
        spec.notify === undefined
          ? undefined
          : {
              webhooks: (spec.notify.webhooks ?? []).map((hook) => ({
                url: hook.url,
                secretRef: hook.secretRef && { name: hook.secretRef.name, key: '' },
              })),
              email: [...(spec.notify.email ?? [])],
            },
    },
    workflowPhases: (workflow?.spec.phases ?? []).map((phase) => ({
      name: phase.name,
      role: phase.role,
      needs: [...(phase.needs ?? [])],
      produces: [...(phase.produces ?? [])],
      fanOut: phase.fanOut ?? false,
      approval: phase.approval ?? false,
      loop: phase.loop && { backTo: phase.loop.backTo, maxIterations: phase.loop.maxIterations },
    })),
  };
}

/** The lifecycle phase the runtime reports, or undefined before it reports one. */
export function phaseOf(runtime: Pick<RuntimeStatus, 'phase'>): ProjectPhase | undefined {
  return PHASES[runtime.phase];
}

/** The last lifecycle change a project's event stream reported: why it entered `phase`. */
export interface PhaseChange {
  phase: ProjectPhase;
  reason: string;
  message: string;
}

/** The phase change an event reports, if it reports one. */
export function phaseChangeOf(event: Event): PhaseChange | undefined {
  const body = event.event;
  if (body?.$case === 'projectPhaseChanged') {
    const phase = PHASES[body.value.phase];
    return phase === undefined ? undefined : { phase, reason: body.value.reason, message: body.value.message };
  }
  if (body?.$case === 'projectFailed') return { phase: 'Failed', reason: body.value.reason, message: body.value.message };
  return undefined;
}

/**
 * The six conditions, derived from the runtime's level (phase, current workflow phase, cost)
 * and, for why a project paused or failed, the last phase change its stream reported — or,
 * after a restart, the reason already written, or what the runtime pauses for (suspend, budget).
 */
export function projectConditions(
  project: Project,
  runtime: RuntimeStatus,
  phase: ProjectPhase,
  change: PhaseChange | undefined,
): DesiredCondition[] {
  const observedGeneration = project.metadata.generation;
  const current = project.status?.conditions;
  const step = runtime.currentPhase;
  const why = (type: ConditionType, fallback: string): { reason: string; message: string } => {
    if (change?.phase === phase && REASON.test(change.reason)) return { reason: change.reason, message: change.message };
    const written = current?.find((condition) => condition.type === type && condition.status === 'True');
    return written === undefined
      ? { reason: fallback, message: `project is ${phase}` }
      : { reason: written.reason, message: written.message };
  };
  const stopped =
    phase === 'Paused'
      ? why(ConditionType.BudgetExceeded, project.spec.suspend ? ProjectReason.Suspended : ProjectReason.BudgetExceeded)
      : phase === 'Failed'
        ? why(ConditionType.Failed, ProjectReason.Failed)
        : undefined;
  const overBudget = stopped?.reason === ProjectReason.BudgetExceeded;
  const spent = `spent ${(runtime.cost?.usd ?? 0).toFixed(4)} of ${project.spec.budget.maxCostUSD} USD`;
  const condition = (type: ConditionType, status: boolean, reason: string, message: string): DesiredCondition => ({
    type,
    status: status ? 'True' : 'False',
    reason,
    message,
    observedGeneration,
  });
  return [
    phase === 'Planning' || phase === 'Running'
      ? condition(ConditionType.Running, true, phase, step === '' ? `project is ${phase}` : `working on ${step}`)
      : condition(ConditionType.Running, false, phase, `project is ${phase}`),
    phase === 'AwaitingApproval'
      ? condition(
          ConditionType.AwaitingApproval,
          true,
          ProjectReason.ApprovalRequired,
          `${step} waits for approval: kubectl annotate project ${project.metadata.name} ${APPROVE_ANNOTATION}=${step}`,
        )
      : condition(ConditionType.AwaitingApproval, false, ProjectReason.NoApprovalPending, 'no phase waits for approval'),
    condition(ConditionType.BudgetExceeded, overBudget, overBudget ? ProjectReason.BudgetExceeded : ProjectReason.WithinBudget, spent),
    phase === 'Delivered'
      ? condition(ConditionType.Delivered, true, ProjectReason.Delivered, `${runtime.artifacts.length} artifacts delivered`)
      : condition(ConditionType.Delivered, false, ProjectReason.NotDelivered, `project is ${phase}`),
    phase === 'Failed' && stopped !== undefined
      ? condition(ConditionType.Failed, true, stopped.reason, stopped.message)
      : condition(ConditionType.Failed, false, ProjectReason.NotFailed, `project is ${phase}`),
  ];
}

/**
 * The resource's status once the runtime reported `runtime`: phase, progress, cost, artifacts
 * and times from the runtime; the conditions derived from them beside the operator's Accepted;
 * a condition the runtime reports itself replaces the derived one.
 */
export function syncedStatus(project: Project, runtime: RuntimeStatus, change: PhaseChange | undefined, now: Date): ProjectStatus {
  const current = project.status ?? {};
  const phase = phaseOf(runtime) ?? current.phase ?? 'Pending';
  let conditions = current.conditions ?? [];
  for (const desired of projectConditions(project, runtime, phase, change)) conditions = setCondition(conditions, desired, now);
  for (const reported of runtime.conditions) {
    if (!PROJECT_CONDITIONS.has(reported.type)) continue;
    const replacement: Condition = {
      type: reported.type,
      status: reported.status === 'True' || reported.status === 'False' ? reported.status : 'Unknown',
      observedGeneration: reported.observedGeneration,
      lastTransitionTime: rfc3339(new Date(reported.lastTransitionTime)),
      reason: REASON.test(reported.reason) ? reported.reason : 'RuntimeReported',
      message: reported.message,
    };
    conditions = [...conditions.filter((condition) => condition.type !== reported.type), replacement];
  }
  const progress = runtime.progress;
  const cost = runtime.cost;
  return {
    ...current,
    phase,
    conditions,
    currentPhase: runtime.currentPhase === '' ? undefined : runtime.currentPhase,
    progress:
      progress === undefined
        ? current.progress
        : {
            tasksTotal: progress.tasksTotal,
            tasksDone: progress.tasksDone,
            tasksFailed: progress.tasksFailed,
            percent: Math.min(100, Math.max(0, progress.percent)),
          },
    cost:
      cost === undefined ? current.cost : { usd: cost.usd, tokensIn: cost.tokensIn, tokensOut: cost.tokensOut, llmCalls: cost.llmCalls },
    artifacts: runtime.artifacts
      .filter((artifact) => artifact.name !== '' && artifact.kind !== '' && artifact.uri !== '')
      .slice(0, MAX_ARTIFACTS)
      .map((artifact) => ({
        name: artifact.name,
        kind: artifact.kind,
        uri: artifact.uri,
        ...(SHA256.test(artifact.sha256) ? { sha256: artifact.sha256 } : {}),
        bytes: artifact.bytes,
      })),
    startedAt: runtime.startedAt === undefined ? current.startedAt : rfc3339(new Date(runtime.startedAt)),
    completedAt: runtime.completedAt === undefined ? current.completedAt : rfc3339(new Date(runtime.completedAt)),
  };
}

/** Delivered and Failed are final: the runtime will not report on the project again. */
export function isFinal(phase: ProjectPhase | undefined): boolean {
  return phase === 'Delivered' || phase === 'Failed';
}
