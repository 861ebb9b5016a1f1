/**
 * `troupe describe project|pool NAME`: what `kubectl describe` shows, for the two kinds people
 * look into — the spec, the status (progress, cost, replicas, load), conditions, a project's
 * artefacts, and the Events recorded about the object, oldest first. `-o json` gives the object
 * and its Events as one JSON document.
 */
import { stringify } from 'yaml';
import type { AgentPool } from '../api/v1alpha1/agentpool.types.js';
import type { Project } from '../api/v1alpha1/project.types.js';
import type { KubeClient } from '../kube/client.js';
import { Events } from '../kube/resources.js';
import type { CoreEvent, KubeObject } from '../kube/types.js';
import type { CliContext } from './context.js';
import { CliError, ExitCode, usage } from './exit-codes.js';
import { age, progressBar, table, usd } from './format.js';

export interface DescribeOptions {
  kind: string;
  name: string;
  json: boolean;
}

/** The Events about one object, oldest first (matched by uid, so a recreated object's old Events do not show). */
export async function eventsAbout(client: KubeClient, object: KubeObject): Promise<CoreEvent[]> {
  const events: CoreEvent[] = [];
  let page = await client.list(Events, { namespace: object.metadata.namespace ?? '', limit: 500 });
  events.push(...page.items);
  while (page.metadata.continue) {
    page = await client.list(Events, { namespace: object.metadata.namespace ?? '', limit: 500, continue: page.metadata.continue });
    events.push(...page.items);
  }
  const when = (event: CoreEvent) => event.firstTimestamp ?? event.metadata.creationTimestamp ?? '';
  // Timestamps have whole seconds; within one, the store's order (resourceVersion) is the order they happened in.
  const order = (event: CoreEvent) => Number(event.metadata.resourceVersion ?? 0);
  return events
    .filter((event) => event.involvedObject.uid === object.metadata.uid && event.involvedObject.kind === object.kind)
    .sort((a, b) => when(a).localeCompare(when(b)) || order(a) - order(b));
}

export async function describe(context: CliContext, options: DescribeOptions): Promise<ExitCode> {
  const kind = context.catalog.named(options.kind);
  if (kind.type.kind !== 'Project' && kind.type.kind !== 'AgentPool') throw usage(`describe takes project or pool, not "${options.kind}"`);
  const object = await context.client.get(kind.type, context.namespace, options.name);
  if (object === undefined)
    throw new CliError(
      ExitCode.NotFound,
      `${kind.type.plural}.${kind.type.group} "${options.name}" not found in namespace ${context.namespace}`,
    );
  const events = await eventsAbout(context.client, object);
  if (options.json) {
    context.out.write(`${JSON.stringify({ object, events }, null, 2)}\n`);
    return ExitCode.Ok;
  }
  const now = Date.now();
  const lines = [
    field('Name', object.metadata.name),
    field('Namespace', object.metadata.namespace ?? ''),
    field('Kind', `${object.kind} (${object.apiVersion})`),
    field('Created', `${object.metadata.creationTimestamp ?? ''} (${age(object.metadata.creationTimestamp, now)} ago)`),
    field('Generation', String(object.metadata.generation ?? 0)),
    ...(object.metadata.deletionTimestamp
      ? [field('Deleting', `since ${object.metadata.deletionTimestamp}, waiting for ${(object.metadata.finalizers ?? []).join(', ')}`)]
      : []),
    ...annotations(object),
    'Spec:',
    indent(stringify((object as { spec?: unknown }).spec ?? {}, { lineWidth: 0, blockQuote: 'literal' }).trimEnd()),
    'Status:',
    ...(kind.type.kind === 'Project' ? projectStatus(object as Project) : poolStatus(object as AgentPool)),
    'Conditions:',
    indent(conditionsTable(object, now)),
    ...(kind.type.kind === 'Project' ? ['Artefacts:', indent(artefactsTable(object as Project))] : []),
    'Events:',
    indent(eventsTable(events, now)),
  ];
  context.out.write(`${lines.join('\n')}\n`);
  return ExitCode.Ok;
}

function field(label: string, value: string): string {
  return `${`${label}:`.padEnd(14)}${value}`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

function annotations(object: KubeObject): string[] {
  const entries = Object.entries(object.metadata.annotations ?? {});
  return entries.length === 0 ? [] : ['Annotations:', ...entries.map(([key, value]) => `  ${key}: ${value}`)];
}

function projectStatus(project: Project): string[] {
  const status = project.status ?? {};
  const progress = status.progress;
  const cost = status.cost;
  return [
    indent(field('Phase', `${status.phase ?? 'Pending'}${status.currentPhase ? ` (workflow phase ${status.currentPhase})` : ''}`)),
    indent(
      field(
        'Progress',
        `${progressBar(progress?.percent ?? 0)}  ${progress?.tasksDone ?? 0}/${progress?.tasksTotal ?? 0} tasks done, ${progress?.tasksFailed ?? 0} failed`,
      ),
    ),
    indent(
      field(
        'Cost',
        `${usd(cost?.usd)} of ${usd(project.spec.budget.maxCostUSD)}: ${cost?.tokensIn ?? 0} tokens in, ${cost?.tokensOut ?? 0} out, ${cost?.llmCalls ?? 0} LLM calls`,
      ),
    ),
    ...(status.startedAt ? [indent(field('Started', status.startedAt))] : []),
    ...(status.completedAt ? [indent(field('Completed', status.completedAt))] : []),
  ];
}

function poolStatus(pool: AgentPool): string[] {
  const status = pool.status ?? {};
  return [
    indent(field('Replicas', `${status.readyReplicas ?? 0} ready of ${status.replicas ?? 0} (spec: ${pool.spec.replicas ?? 1})`)),
    indent(field('Load', `${status.busy ?? 0} busy, ${status.queueDepth ?? 0} queued`)),
    indent(field('Spent', `${usd(status.costUSD)}, ${status.tokens ?? 0} tokens`)),
  ];
}

function conditionsTable(object: KubeObject, now: number): string {
  const conditions =
    (
      object as {
        status?: { conditions?: { type: string; status: string; reason: string; message: string; lastTransitionTime: string }[] };
      }
    ).status?.conditions ?? [];
  if (conditions.length === 0) return '<none>';
  return table(
    ['type', 'status', 'reason', 'age', 'message'],
    conditions.map((condition) => [
      condition.type,
      condition.status,
      condition.reason,
      age(condition.lastTransitionTime, now),
      condition.message,
    ]),
  );
}

function artefactsTable(project: Project): string {
  const artifacts = project.status?.artifacts ?? [];
  if (artifacts.length === 0) return '<none>';
  return table(
    ['name', 'kind', 'bytes', 'sha256'],
    artifacts.map((artifact) => [artifact.name, artifact.kind, String(artifact.bytes ?? ''), (artifact.sha256 ?? '').slice(0, 12)]),
  );
}

function eventsTable(events: readonly CoreEvent[], now: number): string {
  if (events.length === 0) return '<none>';
  return table(
    ['type', 'reason', 'age', 'from', 'message'],
    events.map((event) => [
      event.type,
      event.reason,
      `${age(event.lastTimestamp ?? event.metadata.creationTimestamp, now)}${(event.count ?? 1) > 1 ? ` (x${event.count})` : ''}`,
      event.source?.component ?? event.reportingComponent ?? '',
      event.message,
    ]),
  );
}
