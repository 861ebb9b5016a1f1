/**
 * Test support: the real embedded runtime (simulated LLM over HTTP, the sample pools of two
 * tenants) with a gateway in front of it, and tokens for each kind of user. Tests only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NewClaims } from '@troupe/proto';
import type { RuntimeApi } from '../../api/runtime-api.js';
import { SIM_PRICES, samplePools, submitCommand } from '../../domain/company-fixtures.js';
import { startEmbeddedRuntime } from '../../embedded.js';
import { createProvider } from '../../llm/providers/create-provider.js';
import { SimulatedServer } from '../../llm/simulated-server.js';
import { Gateway, type GatewayOptions } from '../gateway.js';
import { Tokens } from '../tokens.js';

export { submitCommand };

export interface LiveCompany {
  api: RuntimeApi;
  gateway: Gateway;
  tokens: Tokens;
  /** A token for `claims`. */
  token(claims: NewClaims): string;
  stop(): Promise<void>;
}

/** Starts the company for tenants `acme` and `globex` and a gateway on a free port. */
export async function startLiveCompany(options: { latencyMs: number; gateway?: Partial<GatewayOptions> }): Promise<LiveCompany> {
  const server = await SimulatedServer.start({ latencyMs: options.latencyMs, tokensPerSecond: Infinity, seed: 7 });
  const dataDir = mkdtempSync(join(tmpdir(), 'troupe-gateway-'));
  const runtime = await startEmbeddedRuntime({
    dataDir,
    providers: [createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL, pricing: SIM_PRICES })],
    pools: [...samplePools('acme'), ...samplePools('globex')],
    taskCheckMs: 1_000,
  });
  const tokens = new Tokens({ secret: 'gateway-test-secret-of-at-least-32-bytes' });
  const api: RuntimeApi = runtime.company;
  const gateway = await Gateway.start({ api, tokens, port: 0, poolSampleMs: 200, ...options.gateway });
  return {
    api,
    gateway,
    tokens,
    token: (claims) => tokens.sign(claims),
    async stop() {
      await gateway.stop();
      await runtime.stop();
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
