/**
 * Test fixtures of the LLM layer: a simulated HTTP server and an LlmClient buying from it
 * through the `simulated` provider over real sockets. Tests only; production code never
 * imports this.
 */
import { Budgets } from './budget.js';
import { LlmClient, type LlmCall, type LlmClientOptions } from './client.js';
import { CostLedger } from './ledger.js';
import { PriceTable, type ModelPrice } from './pricing.js';
import { SimulatedProvider } from './providers/simulated.js';
import { SimulatedServer, type SimulatedServerOptions } from './simulated-server.js';

export const MODEL = 'sim-large';

/** $2 per million input tokens, $8 per million output tokens: a mid-range hosted model. */
export const PRICES: ModelPrice[] = [{ model: MODEL, inputPerMTokUSD: 2, outputPerMTokUSD: 8 }];

export interface SimulatedStack {
  server: SimulatedServer;
  provider: SimulatedProvider;
  budgets: Budgets;
  ledger: CostLedger;
  llm: LlmClient;
  close(): Promise<void>;
}

/** A server and a client that buys from it; `close` stops both. */
export async function simulatedStack(
  options: { server?: Partial<SimulatedServerOptions>; prices?: ModelPrice[]; client?: Partial<LlmClientOptions>; budgets?: Budgets } = {},
): Promise<SimulatedStack> {
  const server = await SimulatedServer.start({ latencyMs: 10, tokensPerSecond: Infinity, seed: 7, ...options.server });
  const provider = new SimulatedProvider({ name: 'simulated', baseURL: server.openaiBaseURL });
  const budgets = options.budgets ?? new Budgets();
  const ledger = new CostLedger();
  const llm = new LlmClient({
    providers: [{ provider, pricing: new PriceTable(options.prices ?? PRICES) }],
    budgets,
    ledger,
    ...options.client,
  });
  return {
    server,
    provider,
    budgets,
    ledger,
    llm,
    async close() {
      provider.close();
      await server.close();
    },
  };
}

/** A call with sensible defaults; `n` varies the prompt so calls differ. */
export function call(n: number, overrides: Partial<LlmCall> = {}): LlmCall {
  return {
    callId: `test/call-${n}`,
    provider: 'simulated',
    model: MODEL,
    messages: [
      { role: 'system', content: 'You are a developer on a small team.' },
      { role: 'user', content: `Write the release notes for version ${n} of the shop.` },
    ],
    maxOutputTokens: 64,
    account: { client: 'acme', project: 'acme/shop', role: 'developer', phase: 'implementation' },
    ...overrides,
  };
}
