/**
 * How a topic's state moves with each delta. Every fold returns new objects for what changed,
 * so a component holding the state in `$state.raw` re-renders, and nothing else is copied.
 */
import type { DeltaMap, ProjectCard, ProjectDetail, SnapshotMap, TopicKind } from '$protocol';

/** How much history a project page keeps, like the gateway. */
const ACTIVITY_LIMIT = 200;
const COST_POINTS = 240;

export function fold<K extends TopicKind>(kind: K, state: SnapshotMap[K], delta: DeltaMap[K]): SnapshotMap[K] {
  switch (kind) {
    case 'projects':
      return foldProjects(state as SnapshotMap['projects'], delta as DeltaMap['projects']) as SnapshotMap[K];
    case 'project':
      return foldProject(state as ProjectDetail, delta as DeltaMap['project']) as SnapshotMap[K];
    case 'pools':
      return foldPools(state as SnapshotMap['pools'], delta as DeltaMap['pools']) as SnapshotMap[K];
    default:
      return foldCosts(state as SnapshotMap['costs'], delta as DeltaMap['costs']) as SnapshotMap[K];
  }
}

/** The order the overview lists projects in: priority first, then by name. */
export function byPriority(a: ProjectCard, b: ProjectCard): number {
  return b.priority - a.priority || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);
}

function foldProjects(state: SnapshotMap['projects'], { card }: DeltaMap['projects']): SnapshotMap['projects'] {
  const others = state.projects.filter((known) => known.namespace !== card.namespace || known.name !== card.name);
  return { projects: [...others, card].sort(byPriority) };
}

function foldProject(state: ProjectDetail, delta: DeltaMap['project']): ProjectDetail {
  const next: ProjectDetail = { ...state, card: delta.card };
  if (delta.activity !== null) next.activity = [...state.activity, delta.activity].slice(-ACTIVITY_LIMIT);
  if (delta.task !== undefined) {
    const task = delta.task;
    const index = state.tasks.findIndex((known) => known.id === task.id);
    next.tasks = index === -1 ? [...state.tasks, task] : state.tasks.with(index, task);
  }
  if (delta.artifact !== undefined) {
    const artifact = delta.artifact;
    next.artifacts = [...state.artifacts.filter((known) => known.name !== artifact.name), artifact];
  }
  if (delta.costPoint !== undefined) {
    const series = [...state.costSeries, delta.costPoint];
    next.costSeries = series.length > COST_POINTS ? series.filter((_, i) => i % 2 === 1) : series;
  }
  if (delta.timeline !== undefined) next.timeline = delta.timeline;
  return next;
}

function foldPools(state: SnapshotMap['pools'], { pool, removed }: DeltaMap['pools']): SnapshotMap['pools'] {
  const others = state.pools.filter((known) => known.namespace !== pool.namespace || known.name !== pool.name);
  if (removed) return { pools: others };
  return { pools: [...others, pool].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name)) };
}

function foldCosts(state: SnapshotMap['costs'], { row }: DeltaMap['costs']): SnapshotMap['costs'] {
  const same = (known: typeof row) =>
    known.namespace === row.namespace && known.project === row.project && known.role === row.role && known.model === row.model;
  const index = state.rows.findIndex(same);
  return { rows: index === -1 ? [...state.rows, row] : state.rows.with(index, row) };
}
