/**
 * The outbox on a real embedded actor system, posting to a real local HTTP server: what it
 * retries, when it gives up, and what it reports — never a secret.
 */
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem } from '../../actors/actor-system.js';
import { openStore } from '../../store/open.js';
import { eventually } from '../../testing/eventually.js';
import { openTransport } from '../../transport/open.js';
import { BlobArtifactStore, FileBlobStore } from '../artifacts.js';
import { signedWith } from './delivery-fixtures.js';
import { deliveryActors } from './delivery.js';
import { DELIVERY_DEFAULTS, type OutboxMessage, type ProjectInfo } from './delivery.types.js';
import { FileSecrets } from './file-secrets.js';
import { GitCliPusher } from './git-client.js';
import { backoffMs } from './outbox.actor.js';
import { HttpWebhookClient } from './webhook-client.js';

describe('the delivery outbox', () => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('waits between attempts for base × 2^(attempt−1), capped, jittered down to at least half', () => {
    const policy = { baseDelayMs: 100, maxDelayMs: 1_000 };
    expect([backoffMs(policy, 1, 0), backoffMs(policy, 1, 1)]).toEqual([50, 100]);
    expect([backoffMs(policy, 3, 0), backoffMs(policy, 3, 0.5), backoffMs(policy, 3, 1)]).toEqual([200, 300, 400]);
    expect([backoffMs(policy, 12, 0), backoffMs(policy, 12, 1)]).toEqual([500, 1_000]);
  });

  it('retries until an endpoint takes the notice, gives up at once on a refusal and after the last attempt otherwise', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-outbox-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const requests: { path: string; headers: IncomingHttpHeaders; body: string; status: number }[] = [];
    const server: Server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const path = request.url ?? '';
        const earlier = requests.filter((seen) => seen.path === path).length;
        const status = path === '/gone' ? 410 : path === '/down' ? 503 : path === '/flaky' && earlier < 2 ? 500 : 204;
        requests.push({ path, headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), status });
        response.writeHead(status).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    const url = (path: string) => `http://127.0.0.1:${address.port}${path}`;

    const transport = await openTransport({ kind: 'embedded', dir: join(dir, 'log') });
    const store = await openStore({ kind: 'embedded', path: join(dir, 'state.db') });
    const errors: Error[] = [];
    const delivery = deliveryActors(
      {
        ...DELIVERY_DEFAULTS,
        webhooks: new HttpWebhookClient(),
        git: new GitCliPusher({ scratchDir: join(dir, 'scratch') }),
        secrets: new FileSecrets(join(dir, 'secrets')),
        retry: { baseDelayMs: 20, maxDelayMs: 80, maxAttempts: 4, attemptTimeoutMs: 10_000 },
      },
      new BlobArtifactStore({ blobs: new FileBlobStore(join(dir, 'artifacts')), catalog: store }),
      (error) => errors.push(error),
    );
    const system = await ActorSystem.start({
      transport,
      store,
      actors: delivery.actors,
      partitions: 2,
      onError: (error) => errors.push(error),
    });
    cleanups.push(async () => {
      await system.stop();
      await store.close();
      await transport.close();
    });
    const project = (webhooks: ProjectInfo['notify']['webhooks']): ProjectInfo => ({
      namespace: 'acme',
      name: 'shop',
      client: 'acme',
      generation: 1,
      deliverables: ['code'],
      notify: { webhooks, email: [] },
    });
    const notice = (sequence: number): Extract<OutboxMessage, { type: 'notice' }>['notice'] => ({
      id: `acme/shop#${sequence}`,
      occurredAt: Date.UTC(2025, 0, 14),
      data: { type: 'project.approval_requested', workflowPhase: 'architecture' },
    });

    const hooks = [
      { url: url('/gone') },
      { url: url('/down') },
      { url: url('/flaky') },
      { url: url('/signed'), secretRef: { name: 'hooks' } },
    ];
    await system.tell(delivery.outbox, 'acme/shop', { type: 'notice', project: project(hooks), notice: notice(3) }, { id: 'notice-3' });
    // The same message again (a replayed turn of the project) is dropped.
    await system.tell(delivery.outbox, 'acme/shop', { type: 'notice', project: project(hooks), notice: notice(3) }, { id: 'notice-3' });

    await eventually(async () => expect(errors.map((error) => error.message).sort()).toHaveLength(3), 20_000);
    expect(errors.map((error) => error.message).sort()).toEqual([
      `webhook ${url('/down')}: gave up after 4 attempts: answered 503 Service Unavailable`,
      `webhook ${url('/gone')}: gave up after 1 attempt: answered 410 Gone`,
      `webhook ${url('/signed')}: gave up after 4 attempts: Secret acme/hooks is not found`,
    ]);
    const statuses = (path: string) => requests.filter((request) => request.path === path).map((request) => request.status);
    expect(statuses('/gone')).toEqual([410]);
    expect(statuses('/down')).toEqual([503, 503, 503, 503]);
    expect(statuses('/flaky')).toEqual([500, 500, 204]);
    expect(statuses('/signed')).toEqual([]);

    // Once the Secret exists, the next notice goes out signed with it.
    mkdirSync(join(dir, 'secrets', 'acme', 'hooks'), { recursive: true });
    writeFileSync(join(dir, 'secrets', 'acme', 'hooks', 'secret'), 'whsec-outbox-test-key-42');
    await system.tell(
      delivery.outbox,
      'acme/shop',
      { type: 'notice', project: project([hooks[3]!]), notice: notice(4) },
      { id: 'notice-4' },
    );
    await eventually(async () => expect(statuses('/signed')).toEqual([204]), 10_000);
    const signed = requests.find((request) => request.path === '/signed');
    expect(signedWith('whsec-outbox-test-key-42', signed?.headers ?? {}, signed?.body ?? '')).toBe(true);
    expect(JSON.parse(signed?.body ?? '{}')).toEqual({
      id: 'acme/shop#4',
      type: 'project.approval_requested',
      occurredAt: '2025-01-14T00:00:00.000Z',
      namespace: 'acme',
      project: 'shop',
      client: 'acme',
      generation: 1,
      data: { workflowPhase: 'architecture' },
    });
    expect(errors.some((error) => error.message.includes('whsec-outbox-test-key-42'))).toBe(false);
  });
});
