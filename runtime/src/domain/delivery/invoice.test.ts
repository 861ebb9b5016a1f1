/**
 * Invoices from the durable cost ledger. On the embedded runtime behind the gateway: two
 * clients' projects run on the simulated provider, and each client's bill — as JSON and as CSV,
 * through the HTTP API and the RuntimeApi — agrees with the ledger, the projects' status and the
 * provider's own count, shows a tenant nothing of another's, and is the same after the runtime
 * restarts. On Kafka and Cassandra: a runtime node and a gateway-only process give the same bill,
 * and so does a new runtime node after the first has gone.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { infra } from '@troupe/harness';
import { ProjectPhase } from '@troupe/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Invoice } from '../../api/runtime-api.js';
import { startEmbeddedRuntime, type EmbeddedRuntime } from '../../embedded.js';
import { Gateway } from '../../gateway/gateway.js';
import { Tokens } from '../../gateway/tokens.js';
import { createProvider } from '../../llm/providers/create-provider.js';
import { SimulatedServer } from '../../llm/simulated-server.js';
import { startNode } from '../../node/start-node.js';
import { eventually } from '../../testing/eventually.js';
import { openTransport } from '../../transport/open.js';
import { BlobArtifactStore, FileBlobStore } from '../artifacts.js';
import { Company } from '../company.js';
import { SIM_PRICES, samplePools, submitCommand } from '../company-fixtures.js';

/** Two invoices are the same bill when all but the time they were issued agree. */
const bill = (invoice: Invoice) => ({ ...invoice, issuedAt: '' });

describe('invoices from the cost ledger', () => {
  let dataDir: string;
  let simulated: SimulatedServer;
  let runtime: EmbeddedRuntime;
  let gateway: Gateway;
  const tokens = new Tokens({ secret: 'invoice-test-secret-of-at-least-32-bytes' });
  const acme = tokens.sign({ sub: 'cfo@acme', tenant: 'acme' });
  const globex = tokens.sign({ sub: 'cfo@globex', tenant: 'globex' });
  const sre = tokens.sign({ sub: 'oncall', role: 'sre' });

  const startRuntime = () =>
    startEmbeddedRuntime({
      dataDir,
      providers: [createProvider('simulated', { type: 'simulated', baseURL: simulated.openaiBaseURL, pricing: SIM_PRICES })],
      pools: [...samplePools('acme'), ...samplePools('globex')],
      taskCheckMs: 1_000,
    });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'troupe-invoice-'));
    simulated = await SimulatedServer.start({ latencyMs: 5, tokensPerSecond: Infinity, seed: 3 });
    runtime = await startRuntime();
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
    const keys = new Set((await runtime.ledger.rows({ client: 'acme' })).map((row) => `${row.project} ${row.role} ${row.model}`));
    expect(invoice.lines.map((line) => `${line.project} ${line.role} ${line.model}`).sort()).toEqual([...keys].sort());
    for (const line of invoice.lines) {
      const { calls, inputTokens, outputTokens, costUSD } = await runtime.ledger.totals({
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

  // Last: it restarts the runtime under the gateway.
  it('gives the same invoices after the runtime restarts, from the ledger kept in its data directory', async () => {
    const before = [await runtime.company.invoice('acme'), await runtime.company.invoice('globex', 'globex')];
    const bought = simulated.stats().completions;
    await runtime.stop();

    runtime = await startRuntime();
    const after = [await runtime.company.invoice('acme'), await runtime.company.invoice('globex', 'globex')];
    expect(after.map(bill)).toEqual(before.map(bill));
    expect(after[0]?.total.calls).toBeGreaterThan(0);
    // Nothing was bought again, nor counted twice.
    expect(simulated.stats().completions).toBe(bought);
    expect((after[0]?.total.calls ?? 0) + (after[1]?.total.calls ?? 0)).toBe(bought);
  }, 60_000);
});

describe('invoices on Kafka and Cassandra', () => {
  /** Kept across runs; each run bills a client of its own. */
  const KEYSPACE = 'troupe_invoice_test';
  const SECRET = 'invoice-test-token-secret-of-at-least-32-bytes';
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-invoice-kafka-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };

  it('gives the same bill from the runtime node, from a gateway-only process, and from a new node after a restart', async () => {
    const simulated = await SimulatedServer.start({ latencyMs: 5, tokensPerSecond: Infinity, seed: 17 });
    cleanups.push(() => simulated.close());
    const client = `inv-${randomUUID().slice(0, 8)}`;
    const artifactsDir = tempDir();
    const runtimeNode = (name: string) =>
      startNode({
        components: ['runtime', 'pool'],
        transport: { kind: 'kafka', brokers: infra().kafka.brokers, clientId: name },
        store: { kind: 'cassandra', ...infra().cassandra, keyspace: KEYSPACE },
        services: { kind: 'redis', url: infra().redis.url },
        nodeId: `${name}-${randomUUID().slice(0, 6)}`,
        host: '127.0.0.1',
        grpcPort: 0,
        httpPort: 0,
        artifactsDir,
        tokenSecret: SECRET,
        providers: [createProvider('simulated', { type: 'simulated', baseURL: simulated.openaiBaseURL, pricing: SIM_PRICES })],
        pools: samplePools(client),
        taskCheckMs: 1_000,
      });

    const first = await runtimeNode('invoice-node-a');
    let firstStopped = false;
    cleanups.push(async () => void (firstStopped || (await first.stop())));
    await first.company.submitProject(`${client}/shop`, submitCommand(client, 'shop'));
    await eventually(
      async () => expect((await first.company.getProject(client, 'shop'))?.status?.phase).toBe(ProjectPhase.DELIVERED),
      180_000,
      500,
    );
    const status = (await first.company.getProject(client, 'shop'))?.status;
    const invoice = await first.company.invoice(client, client);
    expect(invoice.total).toEqual({
      calls: status?.cost?.llmCalls,
      inputTokens: status?.cost?.tokensIn,
      outputTokens: status?.cost?.tokensOut,
      costUSD: expect.closeTo(status?.cost?.usd ?? -1, 9),
    });
    expect(invoice.total.calls).toBe(simulated.stats().completions);

    // A process that runs no actors and keeps no store asks the client's ledger over Kafka.
    const transport = await openTransport({ kind: 'kafka', brokers: infra().kafka.brokers, clientId: 'invoice-gateway' });
    const gateway = await Company.connect({
      transport,
      artifacts: new BlobArtifactStore({ blobs: new FileBlobStore(artifactsDir) }),
      nodeId: `invoice-gateway-${randomUUID().slice(0, 6)}`,
    });
    cleanups.push(async () => {
      await gateway.stop();
      await transport.close();
    });
    expect(bill(await gateway.invoice(client, client))).toEqual(bill(invoice));

    // The node goes; a new one takes over its partitions and reads the same ledger from Cassandra.
    await first.stop();
    firstStopped = true;
    const second = await runtimeNode('invoice-node-b');
    cleanups.push(() => second.stop());
    expect(bill(await second.company.invoice(client, client))).toEqual(bill(invoice));
    expect(bill(await gateway.invoice(client, client))).toEqual(bill(invoice));
    expect(simulated.stats().completions).toBe(invoice.total.calls);
  }, 300_000);
});
