/**
 * The RuntimeService over gRPC on the embedded runtime: a WatchProject stream starts with the
 * project's snapshot, and a server that stops ends its open streams rather than waiting for
 * watchers that never hang up, so that they reconnect to another replica.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status, type StatusObject } from '@grpc/grpc-js';
import { RuntimeServiceClient, type WatchProjectResponse } from '@troupe/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { submitCommand } from '../domain/company-fixtures.js';
import { startEmbeddedRuntime } from '../embedded.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { eventually } from '../testing/eventually.js';

describe('the gRPC RuntimeService', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('ends the open WatchProject streams when it stops', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'troupe-grpc-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const runtime = await startEmbeddedRuntime({ dataDir, providers: [createProvider('simulated', { type: 'simulated' })], grpcPort: 0 });
    const command = submitCommand('acme', 'watched');
    await runtime.company.submitProject('watched-1', { ...command, spec: { ...command.spec!, suspend: true } });
    await eventually(async () => expect(await runtime.company.getProject('acme', 'watched')).toBeDefined());

    const client = new RuntimeServiceClient(runtime.grpcAddress!, credentials.createInsecure());
    cleanups.push(() => client.close());
    const stream = client.watchProject({ namespace: 'acme', name: 'watched', afterSequence: 0 });
    const updates: WatchProjectResponse[] = [];
    stream.on('data', (update: WatchProjectResponse) => updates.push(update));
    const ended = new Promise<StatusObject>((resolve) => stream.on('status', resolve));
    await eventually(async () => expect(updates[0]?.update?.$case).toBe('snapshot'));

    await runtime.stop();
    expect((await ended).code).toBe(status.OK);
  });
});
