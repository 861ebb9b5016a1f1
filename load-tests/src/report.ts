import { cpus, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import { ratio, type Comparison, type Measurement } from './measure.js';

/** Versions of what the benchmarks compare, read from the installed packages. */
export function versions(packages: readonly string[]): Record<string, string> {
  const require = createRequire(import.meta.url);
  return Object.fromEntries(
    packages.map((name) => [name, (require(`${name}/package.json`) as { version: string }).version]),
  );
}

/** The report as markdown: machine, versions and command above one table row per comparison. */
export function markdown(comparisons: readonly Comparison[], command: string, packageVersions: Record<string, string>): string {
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
    'Each row runs ours and the baseline side by side in the same process; the ratio is ours ÷ baseline of the rate (higher is better).',
    '',
    '| benchmark | size | ours | baseline | ours p50 / p99 | baseline p50 / p99 | ours rate | baseline rate | ratio |',
    '|---|---:|---|---|---:|---:|---:|---:|---:|',
    ...comparisons.map(
      (c) =>
        `| ${c.benchmark} | ${c.size.toLocaleString('en-US')} | ${c.ours.name} | ${c.baseline.name} | ${latency(c.ours)} | ${latency(c.baseline)} | ${rate(c.ours)} | ${rate(c.baseline)} | ${ratio(c)} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

function rate(measurement: Measurement): string {
  return `${Math.round(measurement.rate).toLocaleString('en-US')} ${measurement.unit}`;
}

function latency(measurement: Measurement): string {
  if (measurement.p50Micros === undefined || measurement.p99Micros === undefined) return '—';
  return `${micros(measurement.p50Micros)} / ${micros(measurement.p99Micros)}`;
}

function micros(value: number): string {
  return value >= 1000 ? `${(value / 1000).toFixed(1)} ms` : `${value.toFixed(1)} µs`;
}
