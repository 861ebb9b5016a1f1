/**
 * `troupe approve PROJECT PHASE`: sets the `troupe.dev/approve` annotation the Project
 * controller acts on (as `kubectl annotate` would), after checking PHASE is one of the
 * project's approval gates; the controller releases the gate once the project waits on it.
 */
import { APPROVE_ANNOTATION, type Project } from '../api/v1alpha1/project.types.js';
import type { CliContext } from './context.js';
import { CliError, ExitCode } from './exit-codes.js';
import { objectName } from './kinds.js';

export async function approve(context: CliContext, options: { project: string; phase: string; json: boolean }): Promise<ExitCode> {
  const kind = context.catalog.named('projects');
  const project = (await context.client.get(kind.type, context.namespace, options.project)) as Project | undefined;
  if (project === undefined)
    throw new CliError(ExitCode.NotFound, `projects.troupe.dev "${options.project}" not found in namespace ${context.namespace}`);
  const gates = project.spec.approvals ?? [];
  if (!gates.includes(options.phase)) {
    throw new CliError(
      ExitCode.Refused,
      `project ${options.project} has no approval gate "${options.phase}": spec.approvals is [${gates.join(', ')}]`,
    );
  }
  const patched = (await context.client.patch(
    kind.type,
    context.namespace,
    options.project,
    { metadata: { annotations: { [APPROVE_ANNOTATION]: options.phase } } },
    { strategy: 'merge' },
  )) as Project;
  if (options.json) {
    context.out.write(`${JSON.stringify(patched, null, 2)}\n`);
    return ExitCode.Ok;
  }
  const waiting = patched.status?.phase === 'AwaitingApproval' && patched.status.currentPhase === options.phase;
  const when = waiting
    ? 'the operator releases the gate now'
    : `the gate opens when the project reaches it (it is ${patched.status?.phase ?? 'Pending'} now)`;
  context.out.write(`${objectName(kind, options.project)} approved phase ${options.phase}: ${when}\n`);
  return ExitCode.Ok;
}
