/**
 * Projects end to end: N projects submitted at once to the embedded runtime on one machine —
 * the embedded log, SQLite, the Project actors, the journaled LLM pools (fed by their pool topics) of the
 * sample company (one pool per role, in piscina workers) — each run through the built-in
 * software-delivery workflow to Delivered against the simulated provider's HTTP server, which
 * answers every call after exactly L. The runtime runs in a child process
 * (projects-end-to-end-child.ts) so that its RSS is its own, the server in another so that its
 * work is not counted. Reports projects/s, tasks/s, LLM calls/s and the runtime's peak RSS.
 *
 * The baseline is the pool-concurrency limit: the time the busiest pool needs for its share of
 * the calls with every one of its slots busy all the time (its calls × L ÷ its concurrency).
 * No scheduler beats it; it ignores that each project's phases run one after another, so only
 * a large N can come near it.
 */
import { fileURLToPath } from 'node:url';
import { startChild } from '@troupe/runtime/testing';
import { percentileMicros, type Comparison, type Measurement } from '../measure.js';
import { startSimulatedServerProcess } from '../simulated-server-process.js';
import type { ProjectsPlan, ProjectsRun } from './projects-end-to-end-child.js';

const CHILD = fileURLToPath(new URL('./projects-end-to-end-child.ts', import.meta.url));
/** The simulated provider's time per call. */
const LATENCY_MS = 100;
/** LLM calls in flight per pool (the sample company's pools, one per role of the workflow). */
const POOL_CONCURRENCY = 16;

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

/** N projects to Delivered on one machine, beside the pool-concurrency limit. */
export async function projectsEndToEnd(count: number): Promise<Comparison[]> {
  const server = await startSimulatedServerProcess({ latencyMs: LATENCY_MS, seed: 3 });
  // Far beyond what the limit allows: past it the run is stuck, and the child says where.
  const deadlineMs = 120_000 + count * 1_000;
  const plan: ProjectsPlan = { count, baseURL: server.baseURL, namespace: 'bench', poolConcurrency: POOL_CONCURRENCY, deadlineMs };
  const child = startChild(CHILD, plan);
  try {
    await child.waitFor('DONE', deadlineMs + 60_000);
  } finally {
    await child.kill();
    await server.stop();
  }
  const line = child.lines.find((printed) => printed.startsWith('RESULT '));
  if (line === undefined) throw new Error('projects end to end: the runtime process printed no RESULT');
  const run = JSON.parse(line.slice('RESULT '.length)) as ProjectsRun;

  const seconds = Math.max(...run.toDeliveryMs) / 1000;
  const [busiest = 'none', busiestCalls = 0] = Object.entries(run.callsByRole).sort(([, a], [, b]) => b - a)[0] ?? [];
  const idealSeconds = (busiestCalls * LATENCY_MS) / 1000 / POOL_CONCURRENCY;
  const toDelivery = Float64Array.from(run.toDeliveryMs);
  const ours: Measurement = {
    name: `troupe embedded runtime: projects submitted at once, run to Delivered (p50/p99 submit → delivered; L=${LATENCY_MS} ms)`,
    detail:
      `${(run.tasks / seconds).toFixed(1)} tasks/s, ${(run.calls / seconds).toFixed(1)} LLM calls/s, ` +
      `peak RSS ${mib(run.peakRss)} MiB (${mib(run.rssAtStart)} MiB at start, under tsx), CPU ${(run.cpuMs / count).toFixed(0)} ms/project`,
    rate: count / seconds,
    unit: 'projects/s',
    p50Micros: percentileMicros(toDelivery, 50),
    p99Micros: percentileMicros(toDelivery, 99),
  };
  const baseline: Measurement = {
    name: `pool-concurrency limit: the busiest pool's calls × L ÷ its concurrency (${run.pools} pools × ${POOL_CONCURRENCY} in flight)`,
    detail:
      `${run.calls.toLocaleString('en-US')} LLM calls, ${run.tasks.toLocaleString('en-US')} tasks; ` +
      `${busiest} pool ${busiestCalls.toLocaleString('en-US')} calls → ${idealSeconds.toFixed(1)} s`,
    rate: count / idealSeconds,
    unit: 'projects/s',
  };
  return [{ benchmark: 'projects end to end (embedded, simulated LLM)', size: count, ours, baseline }];
}
