/**
 * A runtime node in a child process, for the journal's crash test: an agent pool whose LLM
 * calls go through the `llm-call` actor on the embedded log and SQLite, buying from a
 * simulated server that the test process owns and counts. With `crash`, it says JOURNALED
 * once a result is journaled and then hangs before anything uses it, for the test to kill it.
 *
 * argv[2]: JSON of a JournalChildPlan.
 */
import { join } from 'node:path';
import { ActorSystem } from '../actors/actor-system.js';
import { openStore } from '../store/open.js';
import { openTransport } from '../transport/open.js';
import { AgentPool } from './agent-pool.js';
import { Budgets } from './budget.js';
import { LlmClient, type LlmCaller } from './client.js';
import { JournaledLlm, llmCallActor } from './journal.js';
import { CostLedger } from './ledger.js';
import { PriceTable } from './pricing.js';
import { SimulatedProvider } from './providers/simulated.js';
import { MODEL, PRICES } from './test-fixtures.js';

export interface JournalChildPlan {
  /** The simulated server's OpenAI base URL. */
  baseURL: string;
  /** Where the embedded log and SQLite live; the same for both runs. */
  dir: string;
  crash: boolean;
}

const plan = JSON.parse(process.argv[2] ?? '{}') as JournalChildPlan;
const transport = await openTransport({ kind: 'embedded', dir: join(plan.dir, 'log') });
const store = await openStore({ kind: 'embedded', path: join(plan.dir, 'state.db') });
const provider = new SimulatedProvider({ name: 'simulated', baseURL: plan.baseURL });
const ledger = new CostLedger();
const llm = new LlmClient({ providers: [{ provider, pricing: new PriceTable(PRICES) }], budgets: new Budgets(), ledger });
const llmCall = llmCallActor();
const system = await ActorSystem.start({ transport, store, actors: [llmCall], partitions: 4, nodeId: `journal-child-${process.pid}` });
// Both runs are the same node restarted: the second takes over the first's lease at once.
const journaled = new JournaledLlm(system, llmCall, llm, { node: 'journal-test-node' });
const caller: LlmCaller = plan.crash
  ? {
      async complete(call) {
        const result = await journaled.complete(call);
        console.log(`JOURNALED ${JSON.stringify(result.text)}`);
        await new Promise(() => {});
        return result;
      },
    }
  : journaled;

const pool = new AgentPool({
  name: 'acme/developers',
  spec: { role: 'developer', model: { provider: 'simulated', name: MODEL, maxOutputTokens: 120 }, concurrency: 4 },
  llm: caller,
  threads: 1,
});
const outcome = await pool.run({
  taskId: 'impl-1',
  account: { client: 'acme', project: 'acme/shop', phase: 'implementation' },
  prompt: 'Write the {{module}} module.',
  vars: { module: 'cart' },
});
console.log(
  `DONE ${JSON.stringify({ output: outcome.output, sources: outcome.calls.map((c) => c.source), bought: ledger.totals().calls })}`,
);
await pool.close();
await system.stop();
await transport.close();
await store.close();
provider.close();
