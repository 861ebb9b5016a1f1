/**
 * `npm run bench [-- --quick] [-- --only id,id] [-- --out dir]`: runs every benchmark beside its
 * baseline, prints the table and writes BENCHMARKS.md and benchmarks.json (at the repository
 * root unless `--out` names a folder). Quick mode runs each scenario once at a small size; the
 * full run uses three sizes to show how cost grows.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { growthOf } from './growth.js';
import { markdown, versions } from './report.js';
import { runSuite, SCENARIOS } from './suite.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Arguments {
  quick: boolean;
  only?: string[];
  out: string;
}

function parse(argv: readonly string[]): Arguments {
  const parsed: Arguments = { quick: false, out: ROOT };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = () => {
      const next = argv[(i += 1)];
      if (next === undefined || next.startsWith('--')) throw new Error(`${flag} needs a value`);
      return next;
    };
    if (flag === '--quick') parsed.quick = true;
    else if (flag === '--only') parsed.only = value().split(',');
    else if (flag === '--out') parsed.out = resolve(value());
    else throw new Error(`unknown argument ${flag}: use --quick, --only ${SCENARIOS.map((s) => s.id).join(',')} or --out <folder>`);
  }
  return parsed;
}

async function main(argv: readonly string[]): Promise<void> {
  const args = parse(argv);
  const runs = await runSuite({ quick: args.quick, ...(args.only === undefined ? {} : { only: args.only }) });
  const comparisons = runs.flatMap((run) => run.comparisons);
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const packageVersions = versions(['nact', 'better-sqlite3', 'kafkajs', 'socket.io', 'uWebSockets.js']);
  const failures = runs.flatMap((run) =>
    run.error === undefined
      ? []
      : [{ benchmark: SCENARIOS.find((scenario) => scenario.id === run.scenario)?.name ?? run.scenario, size: run.size, error: run.error }],
  );
  const report = markdown(comparisons, command, packageVersions, failures);
  console.log(report);
  mkdirSync(args.out, { recursive: true });
  writeFileSync(join(args.out, 'BENCHMARKS.md'), report);
  const json = { command, versions: packageVersions, runs, growth: growthOf(comparisons) };
  writeFileSync(join(args.out, 'benchmarks.json'), `${JSON.stringify(json, null, 2)}\n`);
  if (failures.length > 0) {
    console.error(`bench: ${failures.length} run(s) failed; the report lists them`);
    process.exitCode = 1;
  }
}

await main(process.argv.slice(2));
