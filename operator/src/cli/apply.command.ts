/**
 * `troupe apply -f FILE|DIR [--wait] [--timeout D]`: validates every document against the CRD
 * schemas first and sends nothing if one is refused (exit 1, the API server's message naming the
 * field), then creates or updates each in order. With --wait it waits until every applied pool,
 * provider and workflow is Ready, and every project is Delivered (exit 0), Failed (exit 1) or
 * waits for an approval (exit 0, saying how to approve), with a progress bar per project.
 */
import type { Project } from '../api/v1alpha1/project.types.js';
import { findCondition } from '../controllers/conditions.js';
import type { KubeObject } from '../kube/types.js';
import { type CliContext, watchUntil } from './context.js';
import { CliError, ExitCode } from './exit-codes.js';
import { LiveLine } from './format.js';
import { objectName } from './kinds.js';
import { applyManifest, readManifests, refusals, type ApplyOutcome, type Manifest } from './manifests.js';
import { projectLine } from './project-view.js';

export interface ApplyOptions {
  path: string;
  wait: boolean;
  timeoutMs: number;
  json: boolean;
}

export async function apply(context: CliContext, options: ApplyOptions): Promise<ExitCode> {
  const manifests = readManifests(options.path, context.catalog, { name: context.namespace, explicit: context.namespaceExplicit });
  if (manifests.length === 0) throw new CliError(ExitCode.Refused, `${options.path}: no manifests found`);
  const refused = refusals(manifests, context.validator);
  if (refused.length > 0) throw new CliError(ExitCode.Refused, `nothing was applied: ${refused.join('; ')}`);
  const results: { manifest: Manifest; outcome: ApplyOutcome }[] = [];
  for (const manifest of manifests) {
    const outcome = await applyManifest(context.client, manifest);
    results.push({ manifest, outcome });
    if (!options.json) context.out.write(`${objectName(manifest.kind, manifest.object.metadata.name)} ${outcome}\n`);
  }
  if (options.json) {
    const summary = results.map(({ manifest, outcome }) => ({
      kind: manifest.object.kind,
      namespace: manifest.object.metadata.namespace,
      name: manifest.object.metadata.name,
      outcome,
    }));
    context.out.write(`${JSON.stringify(summary, null, 2)}\n`);
  }
  return options.wait ? waitForAll(context, manifests, options) : ExitCode.Ok;
}

/** Whether an object is done settling, and whether it ended badly. */
function settled(object: KubeObject): { done: boolean; failed: boolean } {
  const status = (object as { status?: { phase?: string; conditions?: Parameters<typeof findCondition>[0] } }).status;
  if (object.kind === 'Project') {
    const phase = status?.phase;
    return { done: phase === 'Delivered' || phase === 'Failed' || phase === 'AwaitingApproval', failed: phase === 'Failed' };
  }
  const ready = findCondition(status?.conditions, 'Ready');
  return { done: ready?.status === 'True' && ready.observedGeneration === object.metadata.generation, failed: false };
}

async function waitForAll(context: CliContext, manifests: readonly Manifest[], options: ApplyOptions): Promise<ExitCode> {
  const deadline = Date.now() + options.timeoutMs;
  let failed = false;
  for (const manifest of manifests) {
    if (manifest.kind.info === undefined) continue;
    const { namespace = '', name } = manifest.object.metadata;
    const line = new LiveLine(context.out as NodeJS.WriteStream);
    const label = objectName(manifest.kind, name);
    let last: KubeObject | undefined;
    const done = await watchUntil(
      context,
      manifest.kind.type,
      namespace,
      (object) => {
        if (object.metadata.name !== name) return false;
        last = object;
        if (!options.json) line.update(object.kind === 'Project' ? projectLine(object as Project) : `${label} waiting to be Ready`);
        return settled(object).done;
      },
      Math.max(0, deadline - Date.now()),
    );
    line.done();
    if (context.signal.aborted) return ExitCode.Ok;
    if (!done) throw new CliError(ExitCode.TimedOut, `timed out waiting for ${label}`);
    if (last !== undefined && settled(last).failed) failed = true;
    const project = last?.kind === 'Project' ? (last as Project) : undefined;
    if (!options.json && project?.status?.phase === 'AwaitingApproval') {
      context.out.write(
        `${label} waits for approval of ${project.status.currentPhase}: troupe approve ${name} ${project.status.currentPhase} -n ${namespace}\n`,
      );
    } else if (!options.json) {
      context.out.write(`${label} ${project?.status?.phase?.toLowerCase() ?? 'ready'}\n`);
    }
  }
  return failed ? ExitCode.Refused : ExitCode.Ok;
}
