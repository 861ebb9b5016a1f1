/**
 * The agent pool under load: tasks/s through an AgentPool (piscina workers rendering prompts,
 * counting tokens and validating JSON answers; this thread buying each call with a budget
 * reservation, RPM/TPM buckets, the circuit breaker and the ledger) against the simulated
 * provider's HTTP server with latency L, at concurrency C — once buying directly through the
 * LlmClient, once through the `llm-call` journal on the embedded log and SQLite, as a replay-safe
 * node does. The baseline is the ideal C/L: what C calls in flight at all times, each taking
 * exactly L, would finish per second. The server runs in a child process so that its work is
 * not counted as ours; CPU per call is this process's user + system time, worker threads
 * included, over the calls.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ActorSystem,
  AgentPool,
  Budgets,
  CostLedger,
  JournaledLlm,
  LlmClient,
  LlmRateLimiter,
  llmCallActor,
  openServices,
  openStore,
  openTransport,
  PriceTable,
  SimulatedProvider,
  type LlmCaller,
} from '@troupe/runtime';
import { percentileMicros, type Comparison, type Measurement } from '../measure.js';
import { startSimulatedServerProcess } from '../simulated-server-process.js';

/** The simulated provider's time per call. */
const LATENCY_MS = 200;
/** Before the measured window: sockets, workers and the JIT warm up, and the lanes spread out. */
const WARM_UP_MS = 1_500;
const MODEL = 'sim-bench';

interface Stack {
  llm: LlmCaller;
  close(): Promise<void>;
}

/** The LlmClient a node would run: budgets, ledger, embedded RPM/TPM buckets, no cache (every call is bought). */
async function client(baseURL: string): Promise<{ llm: LlmClient; close(): Promise<void> }> {
  const provider = new SimulatedProvider({ name: 'simulated', baseURL });
  const services = await openServices({ kind: 'embedded' });
  const budgets = new Budgets();
  budgets.setLimit('project', 'bench/shop', { maxCostUSD: 1_000_000 });
  const llm = new LlmClient({
    providers: [{ provider, pricing: new PriceTable([{ model: MODEL, inputPerMTokUSD: 2, outputPerMTokUSD: 8 }]) }],
    budgets,
    ledger: new CostLedger(),
    rateLimiter: new LlmRateLimiter({ cluster: services.rateLimiter }),
  });
  return {
    llm,
    async close() {
      provider.close();
      await services.close();
    },
  };
}

/** The same client behind the `llm-call` journal on the embedded log and SQLite. */
async function journaled(baseURL: string): Promise<Stack> {
  const inner = await client(baseURL);
  const dir = mkdtempSync(join(tmpdir(), 'troupe-bench-llm-'));
  const transport = await openTransport({ kind: 'embedded', dir: join(dir, 'log') });
  const store = await openStore({ kind: 'embedded', path: join(dir, 'store.db') });
  const actor = llmCallActor();
  const system = await ActorSystem.start({ transport, store, actors: [actor], partitions: 16 });
  return {
    llm: new JournaledLlm(system, actor, inner.llm),
    async close() {
      await system.stop();
      await transport.close();
      await store.close();
      await inner.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Keeps C tasks in flight through a pool of concurrency C: C lanes, each starting its next task
 * when its last one ends. Lanes start spread over one latency, as independent agents would be,
 * rather than in lockstep waves of C; throughput, CPU and latency are taken over a window after
 * a warm-up, so that start and finish do not count.
 */
async function drive(name: string, llm: LlmCaller, concurrency: number, windowMs: number): Promise<Measurement> {
  const pool = new AgentPool({
    name: 'bench/developers',
    spec: {
      role: 'developer',
      model: { provider: 'simulated', name: MODEL, maxOutputTokens: 160 },
      concurrency,
      rateLimit: { requestsPerMinute: 10_000_000, tokensPerMinute: 1_000_000_000 },
    },
    llm,
  });
  const run = (n: number) =>
    pool.run({
      taskId: `task-${n}`,
      account: { client: 'bench', project: 'bench/shop', phase: 'implementation' },
      prompt: 'Write the {{module}} module of the shop: its purpose, its steps and the effort.',
      vars: { module: `module-${n}` },
      output: { kind: 'json', fields: { purpose: 'string', steps: 'string[]', effort: 'number' } },
    });
  const started = performance.now();
  const windowStart = started + WARM_UP_MS;
  const windowEnd = windowStart + windowMs;
  const latencies: number[] = [];
  let cpuAtStart = process.cpuUsage();
  let cpu = { user: 0, system: 0 };
  const marks = [
    setTimeout(() => (cpuAtStart = process.cpuUsage()), WARM_UP_MS),
    setTimeout(() => (cpu = process.cpuUsage(cpuAtStart)), WARM_UP_MS + windowMs),
  ];
  let next = 0;
  const workers = pool.stats.workers;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async (_, lane) => {
        await sleep((lane * LATENCY_MS) / concurrency);
        while (performance.now() < windowEnd) {
          const began = performance.now();
          await run(next++);
          const ended = performance.now();
          if (ended >= windowStart && ended < windowEnd) latencies.push(ended - began);
        }
      }),
    );
  } finally {
    for (const mark of marks) clearTimeout(mark);
    await pool.close();
  }
  const cpuMsPerCall = (cpu.user + cpu.system) / 1000 / latencies.length;
  return {
    name,
    detail: `${workers} worker thread${workers === 1 ? '' : 's'}, CPU ${cpuMsPerCall.toFixed(3)} ms/call`,
    rate: latencies.length / (windowMs / 1000),
    unit: 'tasks/s',
    p50Micros: percentileMicros(Float64Array.from(latencies), 50),
    p99Micros: percentileMicros(Float64Array.from(latencies), 99),
  };
}

/** Tasks/s through the pool at concurrency C, beside the ideal C/L; `windowMs` is how long each variant is measured. */
export async function llmPool(concurrency: number, windowMs = 4_000): Promise<Comparison[]> {
  const server = await startSimulatedServerProcess({ latencyMs: LATENCY_MS, seed: 1 });
  const ideal: Measurement = {
    name: `ideal C/L (L=${LATENCY_MS} ms)`,
    detail: `C=${concurrency}`,
    rate: concurrency / (LATENCY_MS / 1000),
    unit: 'tasks/s',
    p50Micros: LATENCY_MS * 1000,
    p99Micros: LATENCY_MS * 1000,
  };
  try {
    const direct = await client(server.baseURL);
    const plain = await drive('troupe agent pool → LlmClient', direct.llm, concurrency, windowMs).finally(() => direct.close());
    const durable = await journaled(server.baseURL);
    const withJournal = await drive(
      'troupe agent pool → llm-call journal (embedded log + SQLite)',
      durable.llm,
      concurrency,
      windowMs,
    ).finally(() => durable.close());
    return [
      { benchmark: `llm pool tasks/s, L=${LATENCY_MS} ms`, size: concurrency, ours: plain, baseline: ideal },
      { benchmark: `llm pool tasks/s, L=${LATENCY_MS} ms, journaled`, size: concurrency, ours: withJournal, baseline: ideal },
    ];
  } finally {
    await server.stop();
  }
}
