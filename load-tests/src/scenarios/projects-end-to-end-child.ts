/**
 * The embedded runtime under the projects-end-to-end benchmark, alone in its process so that
 * its memory is its own: it starts the runtime with the sample company's pools, submits N
 * projects at once, waits for every one to be Delivered, and prints one line
 * `RESULT <json of a ProjectsRun>`, then `DONE`. A failed or stuck project ends it with an error.
 *
 * argv[2]: JSON of a ProjectsPlan.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProvider, startEmbeddedRuntime, type EmbeddedRuntime } from '@troupe/runtime';
import { SIM_PRICES, samplePools, submitCommand } from '@troupe/runtime/testing';

/** What the parent asks the child to run. */
export interface ProjectsPlan {
  count: number;
  /** The simulated provider's OpenAI base URL. */
  baseURL: string;
  namespace: string;
  /** In-flight calls of each pool. */
  poolConcurrency: number;
  deadlineMs: number;
}

/** What the child measured, on its RESULT line. */
export interface ProjectsRun {
  /** ms from submitting all to each project's delivery. */
  toDeliveryMs: number[];
  tasks: number;
  calls: number;
  callsByRole: Record<string, number>;
  pools: number;
  rssAtStart: number;
  peakRss: number;
  cpuMs: number;
}

const plan = JSON.parse(process.argv[2] ?? '{}') as ProjectsPlan;

/** Why projects did not deliver: the first few, with their workflow phase and true conditions. */
async function stuck(runtime: EmbeddedRuntime, names: readonly string[], delivered: ReadonlySet<string>): Promise<string> {
  const pending = names.filter((name) => !delivered.has(name));
  const shown = await Promise.all(
    pending.slice(0, 3).map(async (name) => {
      const status = (await runtime.company.getProject(plan.namespace, name))?.status;
      const conditions = (status?.conditions ?? []).filter((c) => c.status === 'True').map((c) => `${c.type}/${c.reason}`);
      return `${name} in ${status?.currentPhase || 'no phase'} (${conditions.join(', ') || 'no condition'})`;
    }),
  );
  return `${pending.length} of ${names.length} projects did not deliver within ${plan.deadlineMs / 1000} s, e.g. ${shown.join('; ')}`;
}

const rssAtStart = process.memoryUsage().rss;
let peakRss = rssAtStart;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
const dataDir = mkdtempSync(join(tmpdir(), 'troupe-bench-projects-'));
const pools = samplePools(plan.namespace).map((pool) => ({ ...pool, spec: { ...pool.spec, concurrency: plan.poolConcurrency } }));
const runtime = await startEmbeddedRuntime({
  dataDir,
  providers: [createProvider('simulated', { type: 'simulated', baseURL: plan.baseURL, pricing: SIM_PRICES })],
  pools,
});
try {
  const names = Array.from({ length: plan.count }, (_, i) => `p-${i}`);
  const deliveredAt = new Map<string, number>();
  const failures: string[] = [];
  await runtime.company.watch({ namespace: plan.namespace }, (event) => {
    const change = event.event;
    if (change?.$case === 'projectDelivered' && !deliveredAt.has(event.project)) deliveredAt.set(event.project, performance.now());
    if (change?.$case === 'projectFailed') failures.push(`${event.project}: ${change.value.reason} ${change.value.message}`);
  });
  const cpuAtStart = process.cpuUsage();
  const started = performance.now();
  await Promise.all(names.map((name) => runtime.company.submitProject(`bench-submit-${name}`, submitCommand(plan.namespace, name))));
  const deadline = started + plan.deadlineMs;
  while (deliveredAt.size < plan.count && failures.length === 0 && performance.now() < deadline) await sleep(100);
  const cpu = process.cpuUsage(cpuAtStart);
  if (failures.length > 0) throw new Error(`${failures.length} projects failed, e.g. ${failures[0]}`);
  if (deliveredAt.size < plan.count) throw new Error(await stuck(runtime, names, new Set(deliveredAt.keys())));

  const summaries = await runtime.company.listProjects(plan.namespace);
  const callsByRole: Record<string, number> = {};
  // submitCommand bills the namespace's client, named as the namespace.
  for (const row of await runtime.ledger.rows({ client: plan.namespace })) callsByRole[row.role] = (callsByRole[row.role] ?? 0) + row.calls;
  const run: ProjectsRun = {
    toDeliveryMs: names.map((name) => (deliveredAt.get(name) ?? started) - started),
    tasks: summaries.reduce((sum, summary) => sum + (summary.status?.progress?.tasksDone ?? 0), 0),
    calls: summaries.reduce((sum, summary) => sum + (summary.status?.cost?.llmCalls ?? 0), 0),
    callsByRole,
    pools: pools.length,
    rssAtStart,
    peakRss,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
  console.log(`RESULT ${JSON.stringify(run)}`);
} finally {
  clearInterval(sampler);
  await runtime.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
console.log('DONE');
