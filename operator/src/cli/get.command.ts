/**
 * `troupe get projects|pools|providers|workflows [NAME] [-n NS|-A] [-w] [-o json|yaml|wide]`:
 * a kubectl-style table with the CRD's printer columns (priority columns with -o wide), or the
 * objects as JSON or YAML. -w keeps printing changed rows; with a project NAME it shows the
 * project's progress bar instead, until the project is Delivered or Failed.
 */
import { stringify } from 'yaml';
import type { Project } from '../api/v1alpha1/project.types.js';
import type { ResourceType } from '../kube/client.js';
import type { KubeObject } from '../kube/types.js';
import { type CliContext, watchUntil } from './context.js';
import { CliError, ExitCode, usage } from './exit-codes.js';
import { age, columnCell, LiveLine, table } from './format.js';
import type { CliKind } from './kinds.js';
import { projectLine } from './project-view.js';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';

export interface GetOptions {
  kind: string;
  name: string | undefined;
  allNamespaces: boolean;
  watch: boolean;
  output: OutputFormat;
  /** -w on one project gives up after this long (exit 5); undefined waits until the project ends or Ctrl-C. */
  timeoutMs: number | undefined;
}

/** Parses `-o`. */
export function outputFormat(value: string | undefined, allowed: readonly OutputFormat[]): OutputFormat {
  const format = (value ?? 'table') as OutputFormat;
  if (!allowed.includes(format)) throw usage(`-o must be one of ${allowed.filter((item) => item !== 'table').join(', ')}, got "${value}"`);
  return format;
}

export async function get(context: CliContext, options: GetOptions): Promise<ExitCode> {
  const kind = context.catalog.named(options.kind);
  if (options.allNamespaces && options.name !== undefined) throw usage('a resource cannot be retrieved by name across all namespaces');
  const namespace = options.allNamespaces ? '' : context.namespace;
  let objects: KubeObject[];
  if (options.name !== undefined) {
    const object = await context.client.get(kind.type, namespace, options.name);
    if (object === undefined)
      throw new CliError(ExitCode.NotFound, `${kind.type.plural}.${kind.type.group} "${options.name}" not found in namespace ${namespace}`);
    objects = [object];
  } else {
    objects = await listAll(context, kind, namespace);
  }
  if (
    options.watch &&
    options.name !== undefined &&
    kind.type.kind === 'Project' &&
    (options.output === 'table' || options.output === 'wide')
  ) {
    return followProject(context, objects[0] as Project, options.timeoutMs);
  }
  const printer = new Printer(context, kind, options);
  printer.print(objects, true);
  if (!options.watch) return ExitCode.Ok;
  // The watch starts with a list of its own: rows already printed are not printed again.
  const shown = new Map(objects.map((object) => [`${object.metadata.namespace}/${object.metadata.name}`, object.metadata.resourceVersion]));
  const done = await watchUntil(
    context,
    kind.type,
    namespace,
    (object, deleted) => {
      if (options.name !== undefined && object.metadata.name !== options.name) return false;
      const key = `${object.metadata.namespace}/${object.metadata.name}`;
      if (!deleted && shown.get(key) === object.metadata.resourceVersion) return false;
      shown.set(key, object.metadata.resourceVersion);
      if (!deleted || options.output !== 'table') printer.print([object], false);
      return false;
    },
    options.timeoutMs,
  );
  if (!done) throw new CliError(ExitCode.TimedOut, `timed out watching ${kind.type.plural}`);
  return ExitCode.Ok;
}

async function listAll(context: CliContext, kind: CliKind, namespace: string): Promise<KubeObject[]> {
  const items: KubeObject[] = [];
  let page = await context.client.list(kind.type, { namespace, limit: 500 });
  items.push(...page.items);
  while (page.metadata.continue) {
    page = await context.client.list(kind.type, { namespace, limit: 500, continue: page.metadata.continue });
    items.push(...page.items);
  }
  return items;
}

/** Prints what `get` shows; under -w, rows of later changes align with the table printed first, and a row that reads as before is not printed again. */
class Printer {
  private readonly firstRows: string[][] = [];
  private readonly lastRow = new Map<string, string>();

  constructor(
    private readonly context: CliContext,
    private readonly kind: CliKind,
    private readonly options: GetOptions,
  ) {}

  print(objects: readonly KubeObject[], first: boolean): void {
    const { context, options } = this;
    if (options.output === 'json' || options.output === 'yaml') {
      const single = options.name !== undefined || !first;
      const document = single && objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects };
      if (options.output === 'json') context.out.write(`${JSON.stringify(document, null, options.watch ? 0 : 2)}\n`);
      else context.out.write(`${first ? '' : '---\n'}${stringify(document)}`);
      return;
    }
    if (first && objects.length === 0) {
      context.out.write(options.allNamespaces ? 'No resources found\n' : `No resources found in ${context.namespace} namespace.\n`);
      return;
    }
    const columns = (this.kind.info?.printerColumns ?? []).filter((column) => options.output === 'wide' || (column.priority ?? 0) === 0);
    const headers = [...(options.allNamespaces ? ['namespace'] : []), 'name', ...columns.map((column) => column.name)];
    const now = Date.now();
    const rows = objects.map((object) => [
      ...(options.allNamespaces ? [object.metadata.namespace ?? ''] : []),
      object.metadata.name,
      ...columns.map((column) => (column.type === 'date' ? age(object.metadata.creationTimestamp, now) : columnCell(object, column, now))),
    ]);
    if (first) {
      this.firstRows.push(...rows);
      context.out.write(`${table(headers, rows)}\n`);
      return;
    }
    const lines = table(headers, [...this.firstRows, ...rows])
      .split('\n')
      .slice(1 + this.firstRows.length);
    objects.forEach((object, index) => {
      const key = `${object.metadata.namespace}/${object.metadata.name}`;
      const line = lines[index] ?? '';
      if (this.lastRow.get(key) === line) return;
      this.lastRow.set(key, line);
      context.out.write(`${line}\n`);
    });
  }
}

async function followProject(context: CliContext, project: Project, timeoutMs: number | undefined): Promise<ExitCode> {
  const line = new LiveLine(context.out as NodeJS.WriteStream);
  line.update(projectLine(project));
  let last = project;
  const ended = (phase: string | undefined) => phase === 'Delivered' || phase === 'Failed';
  const done =
    ended(project.status?.phase) ||
    (await watchUntil<Project>(
      context,
      context.catalog.named('projects').type as ResourceType<Project>,
      project.metadata.namespace ?? '',
      (object, deleted) => {
        if (object.metadata.name !== project.metadata.name) return false;
        last = object;
        line.update(deleted ? `${object.metadata.name} deleted` : projectLine(object));
        return deleted || ended(object.status?.phase);
      },
      timeoutMs,
    ));
  line.done();
  if (!done)
    throw new CliError(
      ExitCode.TimedOut,
      `timed out waiting for project ${project.metadata.name}; it is ${last.status?.phase ?? 'Pending'}`,
    );
  return ExitCode.Ok;
}
