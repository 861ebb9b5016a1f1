/**
 * How the CLI tells a person about a project: its one-line progress (bar, phase, tasks, cost)
 * and each runtime event of its activity feed as a readable line.
 */
import { TaskState, type Event as RuntimeEvent, type ProjectPhase, type ProjectStatus as RuntimeStatus } from '@troupe/proto';
import type { Project } from '../api/v1alpha1/project.types.js';
import { phaseOf } from '../controllers/project.mapping.js';
import { progressBar, usd } from './format.js';

/** `storefront  [████░░░░] 40%  Running (implementation)  tasks 4/10  $0.12 of $5.00`. */
export function projectLine(project: Project): string {
  const status = project.status ?? {};
  const progress = status.progress;
  const phase = status.phase ?? 'Pending';
  const current = status.currentPhase ? ` (${status.currentPhase})` : '';
  return `${project.metadata.name}  ${progressBar(progress?.percent ?? 0)}  ${phase}${current}  tasks ${progress?.tasksDone ?? 0}/${progress?.tasksTotal ?? 0}  ${usd(status.cost?.usd)} of ${usd(project.spec.budget.maxCostUSD)}`;
}

const TASK_STATES: Readonly<Record<number, string>> = {
  [TaskState.PENDING]: 'pending',
  [TaskState.QUEUED]: 'queued',
  [TaskState.RUNNING]: 'running',
  [TaskState.SUCCEEDED]: 'done',
  [TaskState.FAILED]: 'failed',
  [TaskState.CANCELLED]: 'cancelled',
};

/** The runtime's phase code as the Project's status.phase names it. */
function phaseName(phase: ProjectPhase): string {
  return phaseOf({ phase }) ?? 'Unknown';
}

function clock(unixMs: number): string {
  return new Date(unixMs).toISOString().slice(11, 19);
}

/** The runtime's view, as the line `logs` starts with. */
export function snapshotLine(status: RuntimeStatus): string {
  const progress = status.progress;
  const current = status.currentPhase ? ` (${status.currentPhase})` : '';
  return `now: ${phaseName(status.phase)}${current}, tasks ${progress?.tasksDone ?? 0}/${progress?.tasksTotal ?? 0}, ${usd(status.cost?.usd)} spent`;
}

/** One runtime event as a line of the activity feed; undefined for events that say nothing new to a person. */
export function eventLine(event: RuntimeEvent): string | undefined {
  const at = clock(event.occurredAt);
  const update = event.event;
  switch (update?.$case) {
    case 'projectPhaseChanged': {
      const { previous, phase, currentPhase, message } = update.value;
      const moved = previous === phase ? phaseName(phase) : `${phaseName(previous)} → ${phaseName(phase)}`;
      return `${at}  phase            ${moved}${currentPhase ? ` (${currentPhase})` : ''}${message ? `: ${message}` : ''}`;
    }
    case 'taskStateChanged': {
      const { title, role, state, errorMessage, progress } = update.value;
      const done = progress === undefined ? '' : `  [${progress.tasksDone}/${progress.tasksTotal}]`;
      return `${at}  task             ${TASK_STATES[state] ?? 'changed'}: ${title} (${role})${errorMessage ? `: ${errorMessage}` : ''}${done}`;
    }
    case 'artifactStored':
      return `${at}  artefact         ${update.value.name} (${update.value.kind}, ${update.value.bytes} bytes)`;
    case 'costRecorded':
      return `${at}  cost             +${usd(update.value.usd)} by ${update.value.role} on ${update.value.model}, ${update.value.tokensIn + update.value.tokensOut} tokens; total ${usd(update.value.total?.usd)}`;
    case 'approvalRequested':
      return `${at}  approval         phase ${update.value.phase} waits for approval: troupe approve ${event.project} ${update.value.phase} -n ${event.namespace}`;
    case 'projectDelivered':
      return `${at}  delivered        ${update.value.artifacts.map((artifact) => artifact.name).join(', ')} for ${usd(update.value.cost?.usd)}`;
    case 'projectFailed':
      return `${at}  failed           ${update.value.reason}: ${update.value.message}`;
    default:
      return undefined;
  }
}
