/**
 * `troupe logs PROJECT [-f]`: the project's activity feed. First what happened, from the Events
 * recorded about the project (submitted, phase changes, approvals); with -f, then every change
 * as it happens, from the runtime's WatchProject stream (tasks, artefacts, costs, approvals),
 * until the project is delivered or fails, or Ctrl-C. `-o json` prints one JSON object a line.
 */
import { Event as RuntimeEvent, ProjectPhase } from '@troupe/proto';
import type { Project } from '../api/v1alpha1/project.types.js';
import type { OperatorError } from '../errors.js';
import { type CliContext, runtimeClient } from './context.js';
import { describeFailure, CliError, ExitCode } from './exit-codes.js';
import { eventsAbout } from './describe.command.js';
import { projectLine, eventLine, snapshotLine } from './project-view.js';

export async function logs(context: CliContext, options: { project: string; follow: boolean; json: boolean }): Promise<ExitCode> {
  const kind = context.catalog.named('projects');
  const project = (await context.client.get(kind.type, context.namespace, options.project)) as Project | undefined;
  if (project === undefined)
    throw new CliError(ExitCode.NotFound, `projects.troupe.dev "${options.project}" not found in namespace ${context.namespace}`);
  for (const event of await eventsAbout(context.client, project)) {
    const at = event.lastTimestamp ?? event.firstTimestamp ?? event.metadata.creationTimestamp ?? '';
    if (options.json)
      context.out.write(`${JSON.stringify({ time: at, type: event.type, reason: event.reason, message: event.message })}\n`);
    else
      context.out.write(
        `${at.slice(11, 19)}  ${event.reason.padEnd(16)} ${event.message}${(event.count ?? 1) > 1 ? ` (x${event.count})` : ''}\n`,
      );
  }
  if (!options.follow) {
    if (!options.json) context.out.write(`${projectLine(project)}\n`);
    return ExitCode.Ok;
  }
  const runtime = runtimeClient(context);
  try {
    return await new Promise<ExitCode>((resolve, reject) => {
      const stream = runtime.watchProject(context.namespace, options.project, {
        onUpdate: (update) => {
          const body = update.update;
          if (body?.$case === 'snapshot') {
            if (options.json) context.out.write(`${JSON.stringify({ snapshot: body.value })}\n`);
            else context.out.write(`${snapshotLine(body.value)}\n`);
            if (body.value.phase === ProjectPhase.DELIVERED || body.value.phase === ProjectPhase.FAILED) finish(ExitCode.Ok);
            return;
          }
          if (body?.$case !== 'event') return;
          const event = body.value;
          if (options.json) context.out.write(`${JSON.stringify(RuntimeEvent.toJSON(event))}\n`);
          else {
            const line = eventLine(event);
            if (line !== undefined) context.out.write(`${line}\n`);
          }
          if (event.event?.$case === 'projectDelivered' || event.event?.$case === 'projectFailed') finish(ExitCode.Ok);
        },
        onEnd: (error: OperatorError | undefined) => {
          if (error === undefined) finish(ExitCode.Ok);
          else reject(new CliError(describeFailure(error).exitCode, `the runtime's activity stream ended: ${error.message}`));
        },
      });
      const stop = () => finish(ExitCode.Ok);
      context.signal.addEventListener('abort', stop);
      function finish(code: ExitCode) {
        context.signal.removeEventListener('abort', stop);
        stream.close();
        resolve(code);
      }
    });
  } finally {
    runtime.close();
  }
}
