/**
 * The RuntimeService's requests, checked at the edge before anything acts on them: names are
 * Kubernetes names, numbers are in the ranges the CRDs allow, lists are bounded. A refusal is an
 * InvalidArgument that names the field, as the request spells it (`command.spec.priority`).
 */
import { randomUUID } from 'node:crypto';
import { BudgetAction, Deliverable, type Approve, type CancelProject, type SubmitProject, type WorkflowPhase } from '@troupe/proto';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { checkLabel, checkName, checkNamespace } from '../gateway/access.js';

const PRINTABLE = /^[\x21-\x7e]*$/;
const MAX_BRIEF = 20_000;
/** Entries of spec.approvals, spec.pools, a Workflow's phases and a phase's needs (the CRDs' maxItems). */
const MAX_ENTRIES = 32;
const MAX_TEXT = 1024;
/** The last instant a JavaScript Date can hold, unix ms. */
const MAX_UNIX_MS = 8.64e15;
const DELIVERABLES = new Set<number>(Object.values(Deliverable).filter((value) => value > 0));
const BUDGET_ACTIONS = new Set<number>(Object.values(BudgetAction).filter((value) => value >= 0));

function invalid(message: string): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidArgument, message);
}

/** A namespace that must be given. */
export function namespaceField(value: string, field: string): string {
  if (value === '') throw invalid(`${field} is required`);
  return checkNamespace(value, field);
}

/** A Kubernetes object name that must be given. */
export function nameField(value: string, field: string): string {
  if (value === '') throw invalid(`${field} is required`);
  return checkName(value, field);
}

/** A namespace to list, or undefined for every namespace (an empty one). */
export function listNamespace(value: string): string | undefined {
  return value === '' ? undefined : checkNamespace(value, 'namespace');
}

function text(value: string, field: string, max: number): string {
  if (value.length > max) throw invalid(`${field} must be at most ${max} characters, got ${value.length}`);
  return value;
}

function integer(value: number, field: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw invalid(`${field} must be an integer in ${min}..${max}, got ${value}`);
  return value;
}

function bounded<T>(values: readonly T[], field: string, max: number): readonly T[] {
  if (values.length > max) throw invalid(`${field} may have at most ${max} entries, got ${values.length}`);
  return values;
}

/**
 * The request's command id: the caller's, or — empty — one assigned here, which makes the
 * command one that is never deduplicated.
 */
export function commandIdField(value: string, method: string): string {
  if (value === '') return `grpc/${method}/${randomUUID()}`;
  if (value.length > 256 || !PRINTABLE.test(value)) throw invalid('commandId must be 1..256 printable ASCII characters without spaces');
  return value;
}

/** Checks a SubmitProject command, field by field. */
export function checkSubmit(command: SubmitProject | undefined): SubmitProject {
  if (command === undefined) throw invalid('command is required');
  namespaceField(command.namespace, 'command.namespace');
  nameField(command.name, 'command.name');
  if (command.uid.length > 128 || !PRINTABLE.test(command.uid)) throw invalid('command.uid must be at most 128 printable ASCII characters');
  integer(command.generation, 'command.generation', 0, Number.MAX_SAFE_INTEGER);
  const { spec } = command;
  if (spec === undefined) throw invalid('command.spec is required');
  namespaceField(spec.client, 'command.spec.client');
  if (spec.brief.length === 0 || spec.brief.length > MAX_BRIEF)
    throw invalid(`command.spec.brief must be 1..${MAX_BRIEF} characters, got ${spec.brief.length}`);
  if (spec.workflow !== '') checkName(spec.workflow, 'command.spec.workflow');
  bounded(spec.deliverables, 'command.spec.deliverables', DELIVERABLES.size).forEach((deliverable, i) => {
    if (!DELIVERABLES.has(deliverable)) throw invalid(`command.spec.deliverables[${i}] is not a known deliverable, got ${deliverable}`);
  });
  const { budget } = spec;
  if (budget === undefined) throw invalid('command.spec.budget is required');
  if (!Number.isFinite(budget.maxCostUsd) || budget.maxCostUsd <= 0)
    throw invalid(`command.spec.budget.maxCostUSD must be a finite number > 0, got ${budget.maxCostUsd}`);
  if (budget.maxTokens !== undefined) integer(budget.maxTokens, 'command.spec.budget.maxTokens', 1, Number.MAX_SAFE_INTEGER);
  if (!BUDGET_ACTIONS.has(budget.onExceeded))
    throw invalid(`command.spec.budget.onExceeded is not a known action, got ${budget.onExceeded}`);
  const pools = Object.entries(spec.pools);
  bounded(pools, 'command.spec.pools', MAX_ENTRIES);
  for (const [role, pool] of pools) checkName(pool, `command.spec.pools[${checkLabel(role, 'command.spec.pools key')}]`);
  bounded(spec.approvals, 'command.spec.approvals', MAX_ENTRIES).forEach((phase, i) => checkLabel(phase, `command.spec.approvals[${i}]`));
  if (spec.priority !== undefined) integer(spec.priority, 'command.spec.priority', 0, 100);
  if (spec.deadline !== undefined) integer(spec.deadline, 'command.spec.deadline', 0, MAX_UNIX_MS);
  bounded(command.workflowPhases, 'command.workflowPhases', MAX_ENTRIES).forEach((phase, i) =>
    checkPhase(phase, `command.workflowPhases[${i}]`),
  );
  return command;
}

function checkPhase(phase: WorkflowPhase, field: string): void {
  checkLabel(phase.name, `${field}.name`);
  checkLabel(phase.role, `${field}.role`);
  bounded(phase.needs, `${field}.needs`, MAX_ENTRIES).forEach((need, i) => checkLabel(need, `${field}.needs[${i}]`));
  bounded(phase.produces, `${field}.produces`, DELIVERABLES.size).forEach((kind, i) => checkLabel(kind, `${field}.produces[${i}]`));
  if (phase.loop !== undefined) {
    checkLabel(phase.loop.backTo, `${field}.loop.backTo`);
    integer(phase.loop.maxIterations, `${field}.loop.maxIterations`, 1, 100);
  }
}

/** Checks a CancelProject command. */
export function checkCancel(command: CancelProject | undefined): CancelProject {
  if (command === undefined) throw invalid('command is required');
  namespaceField(command.namespace, 'command.namespace');
  nameField(command.name, 'command.name');
  text(command.reason, 'command.reason', MAX_TEXT);
  return command;
}

/** Checks an Approve command. */
export function checkApprove(command: Approve | undefined): Approve {
  if (command === undefined) throw invalid('command is required');
  namespaceField(command.namespace, 'command.namespace');
  nameField(command.name, 'command.name');
  if (command.phase === '') throw invalid('command.phase is required');
  checkLabel(command.phase, 'command.phase');
  text(command.approvedBy, 'command.approvedBy', 256);
  return command;
}
