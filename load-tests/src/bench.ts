/**
 * `npm run bench [-- --quick]`: runs every benchmark beside its baseline, prints the table and
 * writes BENCHMARKS.md and benchmarks.json at the repository root. Quick mode runs each
 * scenario once at a small size; the full run uses three sizes to show how cost grows.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { acquireInfra, type InfraEndpoints } from '@troupe/harness';
import type { Comparison } from './measure.js';
import { markdown, versions } from './report.js';
import { actorPath } from './scenarios/actor-path.js';
import { kafkaPath } from './scenarios/kafka-path.js';
import { llmPool } from './scenarios/llm-pool.js';
import { operatorReconcile } from './scenarios/operator-reconcile.js';
import { wsFanout } from './scenarios/ws-fanout.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Scenario {
  name: string;
  sizes: { quick: number[]; full: number[] };
  /** Whether it runs against the harness's real servers (started once for all such scenarios). */
  servers?: boolean;
  run(size: number, servers: () => InfraEndpoints): Promise<Comparison[]>;
}

const SCENARIOS: Scenario[] = [
  { name: 'actor path', sizes: { quick: [4_000], full: [20_000, 200_000, 2_000_000] }, run: actorPath },
  { name: 'llm pool (concurrency C)', sizes: { quick: [128], full: [128, 512] }, run: (concurrency) => llmPool(concurrency) },
  {
    name: 'operator reconcile (N Projects)',
    sizes: { quick: [100], full: [1_000] },
    servers: true,
    run: (count, servers) => operatorReconcile(servers().kube.kubeconfig, count),
  },
  {
    name: 'kafka path',
    sizes: { quick: [2_000], full: [10_000, 50_000, 100_000] },
    servers: true,
    run: (total, servers) => kafkaPath(servers().kafka.brokers, total),
  },
  { name: 'ws fan-out (N clients)', sizes: { quick: [500], full: [1_000, 5_000, 10_000] }, run: (clients) => wsFanout(clients) },
];

async function main(argv: readonly string[]): Promise<void> {
  const quick = argv.includes('--quick');
  const comparisons: Comparison[] = [];
  let infra: Awaited<ReturnType<typeof acquireInfra>> | undefined;
  const servers = () => {
    if (infra === undefined) throw new Error('a scenario that uses servers must say so with `servers: true`');
    return infra.endpoints;
  };
  try {
    for (const scenario of SCENARIOS) {
      if (scenario.servers) infra ??= await acquireInfra();
      for (const size of quick ? scenario.sizes.quick : scenario.sizes.full) {
        console.log(`bench: ${scenario.name} at ${size.toLocaleString('en-US')}…`);
        comparisons.push(...(await scenario.run(size, servers)));
      }
    }
  } finally {
    await infra?.release();
  }
  const command = `npm run bench${quick ? ' -- --quick' : ''}`;
  const report = markdown(comparisons, command, versions(['nact', 'better-sqlite3', 'kafkajs']));
  console.log(report);
  writeFileSync(`${ROOT}BENCHMARKS.md`, report);
  writeFileSync(`${ROOT}benchmarks.json`, `${JSON.stringify({ command, comparisons }, null, 2)}\n`);
}

await main(process.argv.slice(2));
