/**
 * `npm run bench [-- --quick]`: runs every benchmark beside its baseline, prints the table and
 * writes BENCHMARKS.md and benchmarks.json at the repository root. Quick mode runs each
 * scenario once at a small size; the full run uses three sizes to show how cost grows.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Comparison } from './measure.js';
import { markdown, versions } from './report.js';
import { actorPath } from './scenarios/actor-path.js';
import { llmPool } from './scenarios/llm-pool.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const SCENARIOS: { name: string; sizes: { quick: number[]; full: number[] }; run(size: number): Promise<Comparison[]> }[] = [
  { name: 'actor path', sizes: { quick: [4_000], full: [20_000, 200_000, 2_000_000] }, run: actorPath },
  { name: 'llm pool (concurrency C)', sizes: { quick: [128], full: [128, 512] }, run: (concurrency) => llmPool(concurrency) },
];

async function main(argv: readonly string[]): Promise<void> {
  const quick = argv.includes('--quick');
  const comparisons: Comparison[] = [];
  for (const scenario of SCENARIOS) {
    for (const size of quick ? scenario.sizes.quick : scenario.sizes.full) {
      console.log(`bench: ${scenario.name} at ${size.toLocaleString('en-US')}…`);
      comparisons.push(...(await scenario.run(size)));
    }
  }
  const command = `npm run bench${quick ? ' -- --quick' : ''}`;
  const report = markdown(comparisons, command, versions(['nact', 'better-sqlite3']));
  console.log(report);
  writeFileSync(`${ROOT}BENCHMARKS.md`, report);
  writeFileSync(`${ROOT}benchmarks.json`, `${JSON.stringify({ command, comparisons }, null, 2)}\n`);
}

await main(process.argv.slice(2));
