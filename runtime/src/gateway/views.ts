/**
 * The edge between the runtime's protobuf messages and the gateway's wire views: enum numbers
 * become names, optional int64s become nulls, artefacts get the URL the HTTP API serves them at.
 */
import { ProjectPhase, TaskState, type Artifact, type Condition, type PoolEntry, type ProjectSummary } from '@troupe/proto';
import type { ArtifactView, CostView, PoolView, ProgressView, ProjectCard, ProjectPhaseName, TaskStatusName } from './protocol.js';

const PHASE_NAMES: Record<ProjectPhase, ProjectPhaseName> = {
  [ProjectPhase.UNSPECIFIED]: 'Unknown',
  [ProjectPhase.PENDING]: 'Pending',
  [ProjectPhase.PLANNING]: 'Planning',
  [ProjectPhase.RUNNING]: 'Running',
  [ProjectPhase.AWAITING_APPROVAL]: 'AwaitingApproval',
  [ProjectPhase.PAUSED]: 'Paused',
  [ProjectPhase.DELIVERED]: 'Delivered',
  [ProjectPhase.FAILED]: 'Failed',
  [ProjectPhase.UNRECOGNIZED]: 'Unknown',
};

const TASK_STATUS_NAMES: Record<TaskState, TaskStatusName> = {
  [TaskState.UNSPECIFIED]: 'Unknown',
  [TaskState.PENDING]: 'Pending',
  [TaskState.QUEUED]: 'Queued',
  [TaskState.RUNNING]: 'Running',
  [TaskState.SUCCEEDED]: 'Succeeded',
  [TaskState.FAILED]: 'Failed',
  [TaskState.CANCELLED]: 'Cancelled',
  [TaskState.UNRECOGNIZED]: 'Unknown',
};

export function phaseName(phase: ProjectPhase): ProjectPhaseName {
  return PHASE_NAMES[phase] ?? 'Unknown';
}

export function taskStatusName(state: TaskState): TaskStatusName {
  return TASK_STATUS_NAMES[state] ?? 'Unknown';
}

export function progressView(progress: ProgressView | undefined): ProgressView {
  return {
    tasksTotal: progress?.tasksTotal ?? 0,
    tasksDone: progress?.tasksDone ?? 0,
    tasksFailed: progress?.tasksFailed ?? 0,
    percent: progress?.percent ?? 0,
  };
}

export function costView(cost: CostView | undefined): CostView {
  return { usd: cost?.usd ?? 0, tokensIn: cost?.tokensIn ?? 0, tokensOut: cost?.tokensOut ?? 0, llmCalls: cost?.llmCalls ?? 0 };
}

/** The HTTP API path of an artefact's content. */
export function artifactHref(namespace: string, project: string, name: string): string {
  return `/api/projects/${namespace}/${project}/artifacts/${encodeURIComponent(name)}`;
}

export function artifactView(namespace: string, project: string, artifact: Artifact): ArtifactView {
  return {
    name: artifact.name,
    kind: artifact.kind,
    sha256: artifact.sha256,
    bytes: artifact.bytes,
    href: artifactHref(namespace, project, artifact.name),
  };
}

/** A project's card from the runtime's summary of it. */
export function projectCard(summary: ProjectSummary, now: number): ProjectCard {
  const status = summary.status;
  const phase = phaseName(status?.phase ?? ProjectPhase.UNSPECIFIED);
  const failed = status?.conditions.find((condition: Condition) => condition.type === 'Failed' && condition.status === 'True');
  return {
    namespace: summary.namespace,
    name: summary.name,
    client: summary.client,
    priority: summary.priority,
    phase,
    currentPhase: status?.currentPhase ?? '',
    awaitingApproval: phase === 'AwaitingApproval' ? (status?.currentPhase ?? '') : null,
    progress: progressView(status?.progress),
    cost: costView(status?.cost),
    failure: failed === undefined ? null : `${failed.reason}: ${failed.message}`,
    startedAt: status?.startedAt ?? null,
    completedAt: status?.completedAt ?? null,
    updatedAt: now,
  };
}

export function poolView(entry: PoolEntry, now: number): PoolView {
  const status = entry.status;
  return {
    namespace: entry.namespace,
    name: status?.pool ?? '',
    role: status?.role ?? '',
    replicas: status?.replicas ?? 0,
    ready: status?.ready ?? 0,
    busy: status?.busy ?? 0,
    queueDepth: status?.queueDepth ?? 0,
    tokens: status?.tokens ?? 0,
    costUsd: status?.costUsd ?? 0,
    updatedAt: now,
  };
}

/** Whether two pool views differ in anything but when they were seen. */
export function poolChanged(a: PoolView, b: PoolView): boolean {
  return (Object.keys(a) as (keyof PoolView)[]).some((key) => key !== 'updatedAt' && a[key] !== b[key]);
}
