/**
 * The benchmark suite: every scenario, the sizes it runs at (one small size in quick mode,
 * three in the full run, so the report shows how cost grows), and the loop that runs them
 * beside their baselines. `bench.ts` is its command line; `bench.test.ts` runs it in quick mode.
 */
import { acquireInfra, type InfraEndpoints } from '@troupe/harness';
import type { Comparison } from './measure.js';
import { actorPath } from './scenarios/actor-path.js';
import { failover } from './scenarios/failover.js';
import { kafkaPath } from './scenarios/kafka-path.js';
import { llmPool } from './scenarios/llm-pool.js';
import { operatorReconcile } from './scenarios/operator-reconcile.js';
import { projectsEndToEnd } from './scenarios/projects-end-to-end.js';
import { wsFanout } from './scenarios/ws-fanout.js';

/** A benchmark beside its baseline, and the sizes it runs at. */
export interface Scenario {
  /** What `--only` names it by. */
  id: string;
  /** What the size counts, for the progress log. */
  name: string;
  sizes: { quick: number[]; full: number[] };
  /** Whether it runs against the harness's real servers (started once for all such scenarios). */
  servers?: boolean;
  /** Runs at one size; `quick` is the mode, for a scenario that repeats its measurement in the full run. */
  run(size: number, servers: () => InfraEndpoints, quick: boolean): Promise<Comparison[]>;
}

/** Every scenario, in the order they run. */
export const SCENARIOS: readonly Scenario[] = [
  { id: 'actor-path', name: 'actor path', sizes: { quick: [4_000], full: [20_000, 200_000, 2_000_000] }, run: actorPath },
  {
    id: 'llm-pool',
    name: 'llm pool (concurrency C)',
    sizes: { quick: [128], full: [64, 256, 1_024] },
    run: (concurrency) => llmPool(concurrency),
  },
  {
    id: 'projects-end-to-end',
    name: 'projects end to end (N projects)',
    sizes: { quick: [20], full: [100, 300, 1_000] },
    run: (count) => projectsEndToEnd(count),
  },
  {
    id: 'operator-reconcile',
    name: 'operator reconcile (N Projects)',
    sizes: { quick: [100], full: [100, 300, 1_000] },
    servers: true,
    run: (count, servers) => operatorReconcile(servers().kube, count),
  },
  {
    id: 'kafka-path',
    name: 'kafka path',
    sizes: { quick: [2_000], full: [10_000, 50_000, 100_000] },
    servers: true,
    run: (total, servers, quick) => kafkaPath(servers().kafka.brokers, total, quick ? 1 : 3),
  },
  {
    id: 'failover',
    name: 'failover (partitions)',
    sizes: { quick: [8], full: [8, 32, 128] },
    servers: true,
    // Three kills in a row per size in the full run: one failover's time varies with where the group's timers stand.
    run: (partitions, servers, quick) => failover(servers().kafka.brokers, servers().cassandra, partitions, quick ? 1 : 3),
  },
  {
    id: 'ws-fanout',
    name: 'ws fan-out (N clients)',
    sizes: { quick: [500], full: [1_000, 5_000, 10_000] },
    run: (clients) => wsFanout(clients),
  },
];

/** One scenario at one size. */
export interface ScenarioRun {
  scenario: string;
  size: number;
  comparisons: Comparison[];
  /** Why the run gave no comparisons, when it failed. */
  error?: string;
}

/** What to run: quick mode or the full sizes, and optionally only some scenarios. */
export interface SuiteOptions {
  quick: boolean;
  /** Ids of the scenarios to run (default: all). */
  only?: readonly string[];
}

/** Runs the chosen scenarios at their sizes, one after the other, and returns every comparison. */
export async function runSuite(options: SuiteOptions): Promise<ScenarioRun[]> {
  const unknown = (options.only ?? []).filter((id) => !SCENARIOS.some((scenario) => scenario.id === id));
  if (unknown.length > 0) {
    throw new Error(`no scenario ${unknown.join(', ')}: choose from ${SCENARIOS.map((scenario) => scenario.id).join(', ')}`);
  }
  const chosen = SCENARIOS.filter((scenario) => options.only === undefined || options.only.includes(scenario.id));
  const runs: ScenarioRun[] = [];
  let infra: Awaited<ReturnType<typeof acquireInfra>> | undefined;
  const servers = () => {
    if (infra === undefined) throw new Error('a scenario that uses servers must say so with `servers: true`');
    return infra.endpoints;
  };
  try {
    for (const scenario of chosen) {
      if (scenario.servers) infra ??= await acquireInfra();
      for (const size of options.quick ? scenario.sizes.quick : scenario.sizes.full) {
        console.log(`bench: ${scenario.name} at ${size.toLocaleString('en-US')}…`);
        // A failed run is reported with the others rather than losing them.
        try {
          runs.push({ scenario: scenario.id, size, comparisons: await scenario.run(size, servers, options.quick) });
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          console.error(`bench: ${scenario.name} at ${size.toLocaleString('en-US')} failed: ${message}`);
          runs.push({ scenario: scenario.id, size, comparisons: [], error: message });
        }
      }
    }
  } finally {
    await infra?.release();
  }
  return runs;
}
