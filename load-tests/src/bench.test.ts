/**
 * The benchmark harness must not rot: `npm run bench -- --quick` runs as a user runs it (a
 * child process, against the servers of this test run), writing its report into a scratch
 * folder, and every scenario must have produced its rows with numbers that make sense.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Growth } from './growth.js';
import type { Measurement } from './measure.js';
import { SCENARIOS, type ScenarioRun } from './suite.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH = fileURLToPath(new URL('./bench.ts', import.meta.url));

/** Runs the bench command line; resolves with its output, rejects with the tail of it when it fails. */
function bench(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BENCH, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`bench exited with ${code}:\n${output.slice(-4_000)}`))));
  });
}

function expectSane(measurement: Measurement, where: string): void {
  expect(measurement.name, where).not.toBe('');
  expect(measurement.unit, where).not.toBe('');
  expect(Number.isFinite(measurement.rate), `${where}: ${measurement.rate} ${measurement.unit}`).toBe(true);
  // A time is never zero; a rate is zero only where a scenario found no load that kept its budget.
  expect(measurement.rate, `${where}: ${measurement.rate} ${measurement.unit}`).toBeGreaterThanOrEqual(
    measurement.lowerIsBetter ? Number.MIN_VALUE : 0,
  );
  if (measurement.p50Micros !== undefined || measurement.p99Micros !== undefined) {
    expect(measurement.p50Micros, `${where}: p50`).toBeGreaterThanOrEqual(0);
    expect(measurement.p99Micros, `${where}: p99 ≥ p50`).toBeGreaterThanOrEqual(measurement.p50Micros ?? 0);
    expect(Number.isFinite(measurement.p99Micros), `${where}: p99`).toBe(true);
  }
}

describe('npm run bench -- --quick', () => {
  const out = mkdtempSync(join(tmpdir(), 'troupe-bench-quick-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs every scenario at its quick size and reports each comparison with sane numbers', async () => {
    await bench(['--quick', '--out', out]);
    const json = JSON.parse(readFileSync(join(out, 'benchmarks.json'), 'utf8')) as {
      command: string;
      runs: ScenarioRun[];
      growth: Growth[];
    };
    expect(json.command).toBe(`npm run bench -- --quick --out ${out}`);
    for (const scenario of SCENARIOS) {
      const runs = json.runs.filter((run) => run.scenario === scenario.id);
      expect(
        runs.map((run) => run.size),
        scenario.id,
      ).toEqual(scenario.sizes.quick);
      for (const run of runs) {
        expect(run.comparisons.length, `${scenario.id} at ${run.size}`).toBeGreaterThan(0);
        for (const comparison of run.comparisons) {
          const where = `${scenario.id} at ${run.size}: ${comparison.benchmark}`;
          expect(comparison.size, where).toBeGreaterThan(0);
          expectSane(comparison.ours, `${where}, ours`);
          expectSane(comparison.baseline, `${where}, baseline`);
          expect(comparison.ours.rate + comparison.baseline.rate, `${where}: neither side measured anything`).toBeGreaterThan(0);
        }
      }
    }

    // The markdown: machine, versions and command above one table, a row per comparison with the ratio last.
    const report = readFileSync(join(out, 'BENCHMARKS.md'), 'utf8');
    expect(report).toMatch(/^Machine: \d+ × .+, \d+ GiB, /m);
    expect(report).toMatch(/^Versions: nact \d/m);
    expect(report).toContain(`Command: \`npm run bench -- --quick --out ${out}\``);
    const rows = report.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| benchmark '));
    expect(rows.length).toBe(json.runs.flatMap((run) => run.comparisons).length);
    for (const row of rows) expect(row, row).toMatch(/ \| (\d+(\.\d+)?(e-\d+)?x|—) \|$/);
    // One size each in quick mode: the growth section says so rather than making up an exponent.
    expect(json.growth.every((growth) => growth.exponent === undefined)).toBe(true);
    expect(report).toContain('## How cost grows with work');
  }, 900_000);

  it('refuses an unknown scenario, naming the ones there are', async () => {
    await expect(bench(['--quick', '--only', 'nope', '--out', out])).rejects.toThrow(/no scenario nope: choose from actor-path, llm-pool/);
  }, 60_000);
});
