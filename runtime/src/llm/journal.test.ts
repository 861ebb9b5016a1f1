import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem } from '../actors/actor-system.js';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { openStore } from '../store/open.js';
import { openTransport } from '../transport/open.js';
import type { JournalChildPlan } from './journal-child.js';
import { JournaledLlm, llmCallActor } from './journal.js';
import { call, simulatedStack } from './test-fixtures.js';

const CHILD = fileURLToPath(new URL('./journal-child.ts', import.meta.url));

describe('the LLM call journal', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** An embedded node running the llm-call actor. */
  async function journalNode() {
    const dir = tempDir();
    const transport = await openTransport({ kind: 'embedded', dir: join(dir, 'log') });
    const store = await openStore({ kind: 'embedded', path: join(dir, 'state.db') });
    const llmCall = llmCallActor();
    const system = await ActorSystem.start({ transport, store, actors: [llmCall], partitions: 4, onError: () => {} });
    cleanups.push(async () => {
      await system.stop();
      await transport.close();
      await store.close();
    });
    return { system, llmCall };
  }

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-llm-journal-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  it('reuses a result journaled before a crash instead of buying it again', async () => {
    const stack = await simulatedStack({ server: { latencyMs: 20 } });
    cleanups.push(() => stack.close());
    const plan = (crash: boolean): JournalChildPlan => ({ baseURL: stack.server.openaiBaseURL, dir, crash });
    const dir = tempDir();

    // The first node journals the result and dies before the agent worker gets it.
    const first = startChild(plan(true));
    cleanups.push(first.kill);
    const journaled = JSON.parse((await first.waitFor('JOURNALED ')).slice('JOURNALED '.length)) as string;
    await first.kill();
    expect(stack.server.stats().completions).toBe(1);

    // The task runs again on a fresh node: same call id, so the journal answers.
    const second = startChild(plan(false));
    cleanups.push(second.kill);
    const done = JSON.parse((await second.waitFor('DONE ')).slice('DONE '.length)) as {
      output: { kind: string; text: string };
      sources: string[];
      bought: number;
    };
    expect(done).toEqual({ output: { kind: 'text', text: journaled }, sources: ['journal'], bought: 0 });
    expect(await second.exitCode()).toBe(0);
    expect(stack.server.stats().completions).toBe(1);
  });

  it('buys a call once when the same call id is asked for again, even concurrently from two nodes', async () => {
    const stack = await simulatedStack({ server: { latencyMs: 50 } });
    cleanups.push(() => stack.close());
    const { system, llmCall } = await journalNode();
    const journaled = new JournaledLlm(system, llmCall, stack.llm, { node: 'node-a', leaseMs: 1_000 });
    const elsewhere = new JournaledLlm(system, llmCall, stack.llm, { node: 'node-b', leaseMs: 1_000 });

    // Twice from this node, once from another node holding no lease: one purchase.
    const [a, b, c] = await Promise.all([journaled.complete(call(1)), journaled.complete(call(1)), elsewhere.complete(call(1))]);
    const again = await elsewhere.complete(call(1));
    expect([a.source, b.source, c.source].sort()).toEqual(['journal', 'journal', 'provider']);
    expect(again).toMatchObject({ source: 'journal', text: a.text, usage: a.usage });
    expect(stack.server.stats().completions).toBe(1);
    expect(stack.ledger.totals().calls).toBe(1);

    // A failure is not journaled: once the cause has passed, the same call id is bought.
    stack.budgets.setLimit('project', 'acme/shop', { maxCostUSD: 0.000001, onExceeded: 'Pause' });
    await expect(journaled.complete(call(2))).rejects.toMatchObject({ code: 'BUDGET_EXCEEDED', onExceeded: 'Pause' });
    stack.budgets.setLimit('project', 'acme/shop', { maxCostUSD: 10 });
    stack.budgets.resume('acme/shop');
    await expect(journaled.complete(call(2))).resolves.toMatchObject({ source: 'provider' });
  });

  it('sends a record whose answer was lost again, and buys the call once', async () => {
    const stack = await simulatedStack({ server: { latencyMs: 20 } });
    cleanups.push(() => stack.close());
    const { system, llmCall } = await journalNode();
    // The first record is journaled, but its answer is lost on the way back, as when a rebalance
    // outlasts the ask.
    let lost = 0;
    const lossy: Pick<ActorSystem, 'ask'> = {
      async ask(type, id, message, options) {
        const reply = await system.ask(type, id, message, options);
        if ((message as { type: string }).type === 'record' && lost === 0) {
          lost += 1;
          throw new RuntimeError(RuntimeErrorCode.AskTimeout, `no reply from llm-call/${id} within 60000 ms`);
        }
        return reply;
      },
    };
    const journaled = new JournaledLlm(lossy, llmCall, stack.llm, { node: 'node-a', sleep: async () => {} });

    const result = await journaled.complete(call(1));
    expect(lost).toBe(1);
    expect(result.text.length).toBeGreaterThan(0);
    expect(stack.server.stats().completions).toBe(1);
    await expect(journaled.complete(call(1))).resolves.toMatchObject({ source: 'journal', text: result.text });
  });
});

interface Child {
  /** Resolves with the first stdout line starting with `prefix`. */
  waitFor(prefix: string): Promise<string>;
  exitCode(): Promise<number | null>;
  kill(): Promise<void>;
}

function startChild(plan: JournalChildPlan): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(plan)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { prefix: string; resolve(line: string): void }[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiters) if (line.startsWith(waiter.prefix)) waiter.resolve(line);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    waitFor: (prefix) =>
      new Promise<string>((resolve, reject) => {
        const seen = lines.find((line) => line.startsWith(prefix));
        if (seen !== undefined) return resolve(seen);
        waiters.push({ prefix, resolve });
        void exited.then(() => reject(new Error(`child exited before printing ${prefix}: ${stderr}`)));
        setTimeout(() => reject(new Error(`child did not print ${prefix} within 30 s: ${stderr}`)), 30_000).unref();
      }),
    exitCode: () => exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
