import { cpus, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import { growthOf, type Growth } from './growth.js';
import { ratio, type Comparison, type Measurement } from './measure.js';

/** Versions of what the benchmarks compare, read from the installed packages. */
export function versions(packages: readonly string[]): Record<string, string> {
  const require = createRequire(import.meta.url);
  return Object.fromEntries(packages.map((name) => [name, (require(`${name}/package.json`) as { version: string }).version]));
}

/**
 * The report as markdown: machine, versions and command above one table row per comparison,
 * then how each benchmark's cost grows with its size.
 */
export function markdown(
  comparisons: readonly Comparison[],
  command: string,
  packageVersions: Record<string, string>,
  failures: readonly { benchmark: string; size: number; error: string }[] = [],
): string {
  const cpu = cpus();
  const lines = [
    '# Benchmarks',
    '',
    `Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform}/${process.arch}, Node ${process.version}.`,
    `Versions: ${Object.entries(packageVersions)
      .map(([name, version]) => `${name} ${version}`)
      .join(', ')}.`,
    `Command: \`${command}\` (run ${new Date().toISOString().slice(0, 10)}).`,
    '',
    'Each row runs ours and the baseline side by side in the same run; the ratio is ours ÷ baseline of a rate, or baseline ÷ ours of a time, so above 1 is better than the baseline.',
    '',
    '| benchmark | size | ours | baseline | ours p50 / p99 | baseline p50 / p99 | ours rate | baseline rate | ratio |',
    '|---|---:|---|---|---:|---:|---:|---:|---:|',
    ...comparisons.map(
      (c) =>
        `| ${c.benchmark} | ${c.size.toLocaleString('en-US')} | ${described(c.ours)} | ${described(c.baseline)} | ${latency(c.ours)} | ${latency(c.baseline)} | ${rate(c.ours)} | ${rate(c.baseline)} | ${ratio(c)} |`,
    ),
    '',
    '## How cost grows with work',
    '',
    'The cost of a size is the time its work takes at the rate measured (size ÷ rate), or the time measured; k fits cost ∝ size^k over the sizes run: flat below 0.1, linear within 0.1 of 1, worse than linear above 1.1.',
    '',
    ...growthLines(growthOf(comparisons)),
    '',
    ...(failures.length === 0
      ? []
      : [
          '## Runs that failed',
          '',
          ...failures.map((failure) => `- ${failure.benchmark} at ${failure.size.toLocaleString('en-US')}: ${failure.error}`),
          '',
        ]),
  ];
  return lines.join('\n');
}

/** One line per benchmark: each side's exponent and verdict. */
function growthLines(growth: readonly Growth[]): string[] {
  const benchmarks = [...new Set(growth.map((g) => g.benchmark))];
  return benchmarks.map((benchmark) => {
    const sides = growth.filter((g) => g.benchmark === benchmark);
    const sizes = [...new Set(sides.flatMap((g) => g.sizes))].sort((a, b) => a - b).map((size) => size.toLocaleString('en-US'));
    if (sizes.length < 2) return `- ${benchmark} (size ${sizes.join('')} only): growth needs the sizes of the full run.`;
    const verdicts = sides.map((g) =>
      g.exponent === undefined ? `${g.name}: no result at every size` : `${g.name} k=${g.exponent.toFixed(2)}, ${g.verdict}`,
    );
    return `- ${benchmark} (sizes ${sizes.join(' → ')}): ${verdicts.join('; ')}.`;
  });
}

function described(measurement: Measurement): string {
  return measurement.detail === undefined ? measurement.name : `${measurement.name} (${measurement.detail})`;
}

function rate(measurement: Measurement): string {
  const value = measurement.rate;
  const digits = Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3);
  return `${digits} ${measurement.unit}`;
}

function latency(measurement: Measurement): string {
  if (measurement.p50Micros === undefined || measurement.p99Micros === undefined) return '—';
  return `${micros(measurement.p50Micros)} / ${micros(measurement.p99Micros)}`;
}

function micros(value: number): string {
  if (value >= 1_000_000) return `${(value / 1_000_000).toFixed(2)} s`;
  return value >= 1000 ? `${(value / 1000).toFixed(1)} ms` : `${value.toFixed(1)} µs`;
}
