/**
 * spec.approvalTimeout on the embedded runtime, on the simulated provider over HTTP: a gate left
 * waiting past it fails its project with reason ApprovalTimedOut, naming the phase and the
 * timeout — also when the runtime restarts while the gate waits; a gate approved in time lets
 * the project go on to delivery; a timeout that is not a duration is refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProjectPhase, type Event } from '@troupe/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { startEmbeddedRuntime, type EmbeddedRuntime } from '../embedded.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { SimulatedServer } from '../llm/simulated-server.js';
import { eventually } from '../testing/eventually.js';
import { SIM_PRICES, samplePools, submitCommand } from './company-fixtures.js';

describe('approval timeouts, embedded', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function simulated(latencyMs: number): Promise<SimulatedServer> {
    const server = await SimulatedServer.start({ latencyMs, tokensPerSecond: Infinity, seed: 13 });
    cleanups.push(() => server.close());
    return server;
  }

  function dataDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-approval-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A runtime on `dir`; stopped at the end of the test unless the test stops it first. */
  async function start(dir: string, server: SimulatedServer): Promise<EmbeddedRuntime> {
    const runtime = await startEmbeddedRuntime({
      dataDir: dir,
      providers: [createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL, pricing: SIM_PRICES })],
      pools: samplePools('acme'),
      taskCheckMs: 1_000,
    });
    let stopped = false;
    cleanups.push(async () => void (stopped || (await runtime.stop())));
    return {
      ...runtime,
      stop: async () => {
        stopped = true;
        await runtime.stop();
      },
    };
  }

  const phaseOf = async (runtime: EmbeddedRuntime, name: string) => (await runtime.company.getProject('acme', name))?.status?.phase;

  it('fails a project whose gate is not approved in time, naming the phase and the timeout', async () => {
    const runtime = await start(dataDir(), await simulated(5));
    const events: Event[] = [];
    await runtime.company.watch({ namespace: 'acme', project: 'slow' }, (event) => events.push(event));
    await runtime.company.submitProject('slow-1', submitCommand('acme', 'slow', { approvals: ['requirements'], approvalTimeout: '2s' }));

    await eventually(async () => expect(await phaseOf(runtime, 'slow')).toBe(ProjectPhase.AWAITING_APPROVAL), 30_000);
    await eventually(async () => expect(await phaseOf(runtime, 'slow')).toBe(ProjectPhase.FAILED), 30_000);
    const failed = events.map((event) => event.event).find((body) => body?.$case === 'projectFailed');
    expect(failed?.value).toEqual({
      reason: 'ApprovalTimedOut',
      message: 'requirements was not approved within the approval timeout of 2s',
    });
    expect((await runtime.company.getProject('acme', 'slow'))?.status?.currentPhase).toBe('requirements');
    await expect(
      runtime.company.approve('late', { namespace: 'acme', name: 'slow', phase: 'requirements', approvedBy: 'cto@acme' }),
    ).rejects.toThrow('project acme/slow does not wait for approval of requirements: it is Failed');
  }, 60_000);

  it('keeps the deadline of a waiting gate across a restart of the runtime', async () => {
    const server = await simulated(5);
    const dir = dataDir();
    const first = await start(dir, server);
    await first.company.submitProject('restart-1', submitCommand('acme', 'held', { approvals: ['requirements'], approvalTimeout: '3s' }));
    await eventually(async () => expect(await phaseOf(first, 'held')).toBe(ProjectPhase.AWAITING_APPROVAL), 30_000);
    await first.stop();

    // No one approves; the timer the first run set fires in the second.
    const second = await start(dir, server);
    await eventually(async () => expect(await phaseOf(second, 'held')).toBe(ProjectPhase.FAILED), 30_000);
    expect((await second.company.getProject('acme', 'held'))?.status?.currentPhase).toBe('requirements');
  }, 60_000);

  it('lets a project approved in time go on past its timeout to delivery', async () => {
    // Slow enough calls that the phases after the gate outlast the timeout.
    const runtime = await start(dataDir(), await simulated(300));
    const events: Event[] = [];
    await runtime.company.watch({ namespace: 'acme', project: 'quick' }, (event) => events.push(event));
    await runtime.company.submitProject('quick-1', submitCommand('acme', 'quick', { approvals: ['requirements'], approvalTimeout: '1s' }));
    await eventually(async () => expect(await phaseOf(runtime, 'quick')).toBe(ProjectPhase.AWAITING_APPROVAL), 30_000, 20);
    await runtime.company.approve('quick-approve', { namespace: 'acme', name: 'quick', phase: 'requirements', approvedBy: 'cto@acme' });

    await eventually(async () => expect(await phaseOf(runtime, 'quick')).toBe(ProjectPhase.DELIVERED), 90_000, 250);
    expect(events.some((event) => event.event?.$case === 'projectFailed')).toBe(false);
    // The timeout had run out long before the delivery: the approval, not luck, carried it.
    const approvedAt = events.find((event) => event.event?.$case === 'projectPhaseChanged' && event.event.value.reason === 'Approved');
    const completedAt = (await runtime.company.getProject('acme', 'quick'))?.status?.completedAt ?? 0;
    expect(completedAt - (approvedAt?.occurredAt ?? completedAt)).toBeGreaterThan(1_000);
  }, 120_000);

  it('refuses an approvalTimeout that is not a positive duration, naming the field', async () => {
    const runtime = await start(dataDir(), await simulated(5));
    for (const timeout of ['two days', '0s', '30', '1d']) {
      await expect(
        runtime.company.submitProject(`bad-${timeout}`, submitCommand('acme', 'bad', { approvalTimeout: timeout })),
        timeout,
      ).rejects.toThrow(
        `spec.approvalTimeout must be hours, minutes and seconds such as 30m, 24h or 1h30m, longer than none, got "${timeout}"`,
      );
    }
    expect(await runtime.company.getProject('acme', 'bad')).toBeUndefined();
  });
});
