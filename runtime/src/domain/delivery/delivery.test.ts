/**
 * A whole project delivered to the outside world on the embedded runtime: its deliverables
 * pushed to a bare repository over git://, an email per phase change to a real SMTP server, and
 * signed webhooks to an endpoint that is down until the runtime has restarted, then fails the
 * first attempts of each event — and still takes every event exactly once.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Deliverable, type Event, ProjectPhase } from '@troupe/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { startEmbeddedRuntime, type EmbeddedRuntime } from '../../embedded.js';
import { createProvider } from '../../llm/providers/create-provider.js';
import { SimulatedServer } from '../../llm/simulated-server.js';
import { eventually } from '../../testing/eventually.js';
import { SIM_PRICES, samplePools, submitCommand } from '../company-fixtures.js';
import { git, signedWith, startGitDaemon, startSmtpServer, startWebhookEndpoint } from './delivery-fixtures.js';
import type { WebhookPayload } from './delivery.types.js';

const SIGNING_KEY = 'whsec-0123456789abcdef0123';

describe('delivery of a project, embedded', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('pushes the deliverables, mails each phase change, and posts every notice once across a restart', async () => {
    const root = mkdtempSync(join(tmpdir(), 'troupe-delivery-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    // The Secret acme/hooks, as the embedded runtime reads Secrets: one file per key.
    mkdirSync(join(dataDir, 'secrets', 'acme', 'hooks'), { recursive: true });
    writeFileSync(join(dataDir, 'secrets', 'acme', 'hooks', 'secret'), `${SIGNING_KEY}\n`);

    const simulated = await SimulatedServer.start({ latencyMs: 5, tokensPerSecond: Infinity, seed: 5 });
    cleanups.push(() => simulated.close());
    const daemon = await startGitDaemon(join(root, 'served'));
    cleanups.push(() => daemon.stop());
    await git(root, 'init', '-q', '--bare', '-b', 'main', join(root, 'served', 'shop.git'));
    const smtp = await startSmtpServer();
    cleanups.push(() => smtp.stop());
    const hooks = await startWebhookEndpoint({ failures: 2, mode: 'down' });
    cleanups.push(() => hooks.stop());

    let runtime: EmbeddedRuntime | undefined;
    cleanups.push(() => runtime?.stop());
    const start = () =>
      startEmbeddedRuntime({
        dataDir,
        providers: [createProvider('simulated', { type: 'simulated', baseURL: simulated.openaiBaseURL, pricing: SIM_PRICES })],
        pools: samplePools('acme'),
        taskCheckMs: 1_000,
        delivery: {
          smtp: { host: '127.0.0.1', port: smtp.port },
          retry: { baseDelayMs: 50, maxDelayMs: 400, maxAttempts: 10_000, attemptTimeoutMs: 10_000 },
        },
      });

    runtime = await start();
    const events: Event[] = [];
    await runtime.company.watch({ namespace: 'acme', project: 'shop' }, (event) => events.push(event));
    const command = submitCommand('acme', 'shop');
    command.spec!.deliverables = [
      Deliverable.REQUIREMENTS,
      Deliverable.ARCHITECTURE,
      Deliverable.CODE,
      Deliverable.TESTS,
      Deliverable.DOCS,
      Deliverable.DEPLOYMENT,
    ];
    command.spec!.delivery = { git: { url: daemon.url('shop.git'), branch: 'main' } };
    command.spec!.notify = {
      webhooks: [{ url: hooks.url, secretRef: { name: 'hooks', key: '' } }],
      email: ['cto@acme.example', 'ops@acme.example'],
    };
    await runtime.company.submitProject('submit-1', command);

    await eventually(async () => {
      expect((await runtime!.company.getProject('acme', 'shop'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 60_000);
    const status = (await runtime.company.getProject('acme', 'shop'))?.status;
    // The push is over once the delivered notice is tried; the endpoint is still down.
    await eventually(async () => {
      expect(hooks.requests.some((request) => request.headers['x-troupe-event'] === 'project.delivered')).toBe(true);
      expect(events.some((event) => event.event?.$case === 'projectDelivered')).toBe(true);
    }, 30_000);
    expect(hooks.accepted.size).toBe(0);
    await runtime.stop();
    runtime = undefined;

    // Every phase change, approval wait and the delivery make a notice, whose id is the event's.
    const noticed = new Set(['projectPhaseChanged', 'approvalRequested', 'projectDelivered']);
    const expected = events.filter((event) => noticed.has(event.event?.$case ?? '')).map((event) => event.id);
    const phaseChanges = events.filter((event) => event.event?.$case === 'projectPhaseChanged');
    expect(phaseChanges.length).toBeGreaterThan(6);

    hooks.mode = 'flaky';
    runtime = await start();
    await eventually(async () => expect([...hooks.accepted.keys()].sort()).toEqual([...expected].sort()), 60_000);

    // Exactly once per id, each attempt signed; some were refused and retried before.
    for (const [id, bodies] of hooks.accepted) expect(bodies.length, id).toBe(1);
    expect(hooks.requests.length).toBeGreaterThan(expected.length);
    for (const request of hooks.requests) {
      expect(signedWith(SIGNING_KEY, request.headers, request.body)).toBe(true);
      expect(request.headers['x-troupe-timestamp']).toMatch(/^\d{10}$/);
      expect((JSON.parse(request.body) as WebhookPayload).id).toBe(request.headers['x-troupe-event-id']);
    }
    const payloads = [...hooks.accepted.values()].map(([body]) => JSON.parse(body ?? '{}') as WebhookPayload);
    const delivered = payloads.find((payload) => payload.type === 'project.delivered');
    expect(payloads.find((payload) => payload.id === phaseChanges[0]?.id)).toMatchObject({
      type: 'project.phase_changed',
      namespace: 'acme',
      project: 'shop',
      client: 'acme',
      generation: 1,
      data: { phase: 'Planning', previous: 'Pending', reason: 'Accepted' },
    });

    // The branch holds every artefact, byte for byte, in the commit the delivered notice names.
    const head = (await git(root, 'ls-remote', daemon.url('shop.git'), 'refs/heads/main')).split('\t')[0];
    expect(delivered?.data).toMatchObject({ git: { url: daemon.url('shop.git'), branch: 'main', commit: head } });
    const clone = join(root, 'clone');
    await git(root, 'clone', '-q', '--branch', 'main', daemon.url('shop.git'), clone);
    expect(await git(clone, 'log', '-1', '--format=%an <%ae>|%s')).toBe('Troupe <troupe@troupe.dev>|Deliver acme/shop, generation 1');
    const artifacts = status?.artifacts ?? [];
    expect(artifacts.map((artifact) => artifact.kind)).toContain('deployment');
    for (const artifact of artifacts) {
      const bytes = readFileSync(join(clone, artifact.name));
      expect(createHash('sha256').update(bytes).digest('hex'), artifact.name).toBe(artifact.sha256);
    }
    // The deployment trigger: the delivery manifest, inline.
    expect((delivered?.data as { manifest?: unknown }).manifest).toEqual(JSON.parse(readFileSync(join(clone, 'delivery.json'), 'utf8')));

    // One email per phase change to both addresses; a repeat after the restart keeps its Message-ID.
    const messageIds = new Set(smtp.mails.map((mail) => /^Message-ID: (.*)$/m.exec(mail.data)?.[1]));
    expect(messageIds.size).toBe(phaseChanges.length);
    for (const mail of smtp.mails) {
      expect(mail.to).toEqual(['cto@acme.example', 'ops@acme.example']);
      expect(mail.data).toMatch(/^Subject: \[troupe\] acme\/shop is (Planning|Running|Delivered)/m);
    }
    expect(smtp.mails.some((mail) => /^Subject: \[troupe\] acme\/shop is Delivered/m.test(mail.data))).toBe(true);
  }, 150_000);
});
