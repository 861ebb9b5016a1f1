/**
 * `troupe delete KIND NAME [--wait=false] [--timeout D]`: deletes the object and, by default,
 * waits until its finalizers let it go (a Project's cancels it in the runtime first), showing
 * what it waits for.
 */
import type { KubeObject } from '../kube/types.js';
import { type CliContext, watchUntil } from './context.js';
import { CliError, ExitCode } from './exit-codes.js';
import { LiveLine } from './format.js';
import { objectName } from './kinds.js';

export async function remove(
  context: CliContext,
  options: { kind: string; name: string; wait: boolean; timeoutMs: number; json: boolean },
): Promise<ExitCode> {
  const kind = context.catalog.named(options.kind);
  const label = objectName(kind, options.name);
  if (!(await context.client.delete(kind.type, context.namespace, options.name))) {
    throw new CliError(
      ExitCode.NotFound,
      `${kind.type.plural}.${kind.type.group} "${options.name}" not found in namespace ${context.namespace}`,
    );
  }
  const report = (state: string) =>
    context.out.write(
      options.json
        ? `${JSON.stringify({ kind: kind.type.kind, namespace: context.namespace, name: options.name, state })}\n`
        : `${label} ${state}\n`,
    );
  if (!options.wait) {
    report('deletion requested');
    return ExitCode.Ok;
  }
  const line = new LiveLine(context.out as NodeJS.WriteStream);
  const waiting = (object: KubeObject) =>
    `${label} is being deleted: waiting for ${(object.metadata.finalizers ?? []).join(', ') || 'the server'}`;
  const isIt = (object: KubeObject) => object.metadata.name === options.name;
  const gone = await watchUntil(
    context,
    kind.type,
    context.namespace,
    (object, deleted) => {
      if (!isIt(object)) return false;
      if (!deleted && !options.json) line.update(waiting(object));
      return deleted;
    },
    options.timeoutMs,
    (objects) => !objects.some(isIt),
  );
  line.done();
  if (context.signal.aborted) return ExitCode.Ok;
  if (!gone) throw new CliError(ExitCode.TimedOut, `timed out waiting for ${label} to be deleted; its finalizers still hold it`);
  report('deleted');
  return ExitCode.Ok;
}
