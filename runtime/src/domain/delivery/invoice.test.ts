/**
 * Invoices on the embedded runtime behind the gateway: two clients' projects run on the
 * simulated provider, and each client's bill — as JSON and as CSV, through the HTTP API and the
 * RuntimeApi — agrees with the cost ledger, the projects' status and the provider's own count,
 * and shows a tenant nothing of another's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProjectPhase } from '@troupe/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Invoice } from '../../api/runtime-api.js';
import { startEmbeddedRuntime, type EmbeddedRuntime } from '../../embedded.js';
import { Gateway } from '../../gateway/gateway.js';
import { Tokens } from '../../gateway/tokens.js';
import { createProvider } from '../../llm/providers/create-provider.js';
import { SimulatedServer } from '../../llm/simulated-server.js';
import { eventually } from '../../testing/eventually.js';
import { SIM_PRICES, samplePools, submitCommand } from '../company-fixtures.js';

describe('invoices from the cost ledger', () => {
  let dataDir: string;
  let simulated: SimulatedServer;
  let runtime: EmbeddedRuntime;
  let gateway: Gateway;
  const tokens = new Tokens({ secret: 'invoice-test-secret-of-at-least-32-bytes' });
  const acme = tokens.sign({ sub: 'cfo@acme', tenant: 'acme' });
  const globex = tokens.sign({ sub: 'cfo@globex', tenant: 'globex' });
  const sre = tokens.sign({ sub: 'oncall', role: 'sre' });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'troupe-invoice-'));
    simulated = await SimulatedServer.start({ latencyMs: 5, tokensPerSecond: Infinity, seed: 3 });
    runtime = await startEmbeddedRuntime({
      dataDir,
      providers: [createProvider('simulated', { type: 'simulated', baseURL: simulated.openaiBaseURL, pricing: SIM_PRICES })],
      pools: [...samplePools('acme'), ...samplePools('globex')],
      taskCheckMs: 1_000,
    });
    gateway = await Gateway.start({ api: runtime.company, tokens, port: 0 });
    await runtime.company.submitProject('submit-shop', submitCommand('acme', 'shop'));
    await runtime.company.submitProject('submit-site', submitCommand('globex', 'site'));
    await eventually(async () => {
      for (const [namespace, name] of [
        ['acme', 'shop'],
        ['globex', 'site'],
      ] as const) {
        expect((await runtime.company.getProject(namespace, name))?.status?.phase).toBe(ProjectPhase.DELIVERED);
      }
    }, 90_000);
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await runtime?.stop();
    await simulated?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function get(path: string, token?: string): Promise<{ status: number; type: string; text: string }> {
    const response = await fetch(`${gateway.url}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text() };
  }

  it("bills each client for its projects' calls, tokens and dollars, as the ledger and the provider counted them", async () => {
    const shop = await get('/api/invoices/acme?format=json', acme);
    expect(shop.status).toBe(200);
    const invoice = JSON.parse(shop.text) as Invoice;
    expect(invoice).toMatchObject({ client: 'acme', namespace: 'acme', currency: 'USD' });
    expect(Date.parse(invoice.issuedAt)).not.toBeNaN();

    // A line per project, role and model the ledger has; each line is the ledger's sum over phases.
    const keys = new Set(runtime.ledger.rows({ client: 'acme' }).map((row) => `${row.project} ${row.role} ${row.model}`));
    expect(invoice.lines.map((line) => `${line.project} ${line.role} ${line.model}`).sort()).toEqual([...keys].sort());
    for (const line of invoice.lines) {
      const { calls, inputTokens, outputTokens, costUSD } = runtime.ledger.totals({
        client: 'acme',
        project: line.project,
        role: line.role,
        model: line.model,
      });
      expect(line).toEqual({ project: line.project, role: line.role, model: line.model, calls, inputTokens, outputTokens, costUSD });
    }
    expect(new Set(invoice.lines.map((line) => line.role))).toEqual(new Set(['pm', 'architect', 'developer', 'qa', 'writer', 'devops']));

    // The total is the project's cost as its status shows it, and with the other client's bill,
    // every completion the provider served.
    const status = (await runtime.company.getProject('acme', 'shop'))?.status;
    expect(invoice.total.calls).toBe(status?.cost?.llmCalls);
    expect(invoice.total.inputTokens).toBe(status?.cost?.tokensIn);
    expect(invoice.total.outputTokens).toBe(status?.cost?.tokensOut);
    expect(invoice.total.costUSD).toBeCloseTo(status?.cost?.usd ?? -1, 9);
    expect(invoice.total.costUSD).toBeGreaterThan(0);
    const site = await runtime.company.invoice('globex');
    expect(site.lines.every((line) => line.project === 'globex/site')).toBe(true);
    expect(invoice.total.calls + site.total.calls).toBe(simulated.stats().completions);
  });

  it('gives the same invoice as CSV', async () => {
    const csv = await get('/api/invoices/acme?format=csv', acme);
    expect(csv.status).toBe(200);
    expect(csv.type).toBe('text/csv; charset=utf-8');
    const invoice = await runtime.company.invoice('acme', 'acme');
    const rows = csv.text.trimEnd().split('\r\n');
    expect(rows[0]).toBe('project,role,model,calls,input_tokens,output_tokens,cost_usd');
    expect(rows.slice(1, -1)).toEqual(
      invoice.lines.map((line) =>
        [line.project, line.role, line.model, line.calls, line.inputTokens, line.outputTokens, line.costUSD.toFixed(9)].join(','),
      ),
    );
    const { total } = invoice;
    expect(rows.at(-1)).toBe(['total', '', '', total.calls, total.inputTokens, total.outputTokens, total.costUSD.toFixed(9)].join(','));
  });

  it('keeps a tenant to its own namespace, lets staff see every one, and refuses what it cannot answer', async () => {
    expect((await get('/api/invoices/acme?namespace=acme', globex)).status).toBe(403);
    // A tenant's token reads its own namespace, where the other client has no projects.
    expect((JSON.parse((await get('/api/invoices/acme', globex)).text) as Invoice).lines).toEqual([]);

    const all = JSON.parse((await get('/api/invoices/globex', sre)).text) as Invoice;
    expect(all.namespace).toBeUndefined();
    expect(all).toEqual({ ...(await runtime.company.invoice('globex')), issuedAt: all.issuedAt });

    expect((await get('/api/invoices/acme')).status).toBe(401);
    const format = await get('/api/invoices/acme?format=xml', acme);
    expect(format.status).toBe(400);
    expect(format.text).toMatch(/format must be json or csv, got \\"xml\\"/);
    expect((await get('/api/invoices/Not_A_Client', sre)).status).toBe(400);
  });
});
