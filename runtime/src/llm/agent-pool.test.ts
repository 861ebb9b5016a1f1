import { afterEach, describe, expect, it } from 'vitest';
import { RuntimeErrorCode } from '../errors.js';
import { AgentPool, type AgentPoolSpec } from './agent-pool.js';
import { BudgetExceededError, InvalidTaskError, MalformedOutputError, StuckLoopError } from './errors.js';
import { MODEL, simulatedStack, type SimulatedStack } from './test-fixtures.js';

const spec = (concurrency: number): AgentPoolSpec => ({
  role: 'developer',
  model: { provider: 'simulated', name: MODEL, maxOutputTokens: 200 },
  concurrency,
  systemPrompt: 'You are a careful developer.',
});

const account = { client: 'acme', project: 'acme/shop', phase: 'implementation' };
const plan = { kind: 'json', fields: { title: 'string', steps: 'string[]', effort: 'number' } } as const;

describe('AgentPool', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(
    concurrency: number,
    options: { latencyMs?: number; maxRepairs?: number } = {},
  ): Promise<{ stack: SimulatedStack; pool: AgentPool }> {
    const stack = await simulatedStack({ server: { latencyMs: options.latencyMs ?? 10 } });
    cleanups.push(() => stack.close());
    const pool = new AgentPool({
      name: 'acme/developers',
      spec: spec(concurrency),
      llm: stack.llm,
      threads: 2,
      maxRepairs: options.maxRepairs,
    });
    cleanups.push(() => pool.close());
    return { stack, pool };
  }

  it('runs tasks in piscina workers with at most spec.concurrency LLM calls in flight', async () => {
    const { stack, pool } = await setup(8, { latencyMs: 150 });
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        pool.run({ taskId: `t${i}`, account, prompt: 'Plan the {{module}} module.', vars: { module: `m${i}` } }),
      ),
    );
    expect(outcomes).toHaveLength(40);
    for (const outcome of outcomes) {
      expect(outcome.output.kind).toBe('text');
      expect(outcome.usage.outputTokens).toBeGreaterThan(0);
      expect(outcome.costUSD).toBeGreaterThan(0);
    }
    expect(stack.server.stats().completions).toBe(40);
    // Eight at once, never more: the server saw exactly the pool's concurrency.
    expect(stack.server.stats().peakInFlight).toBe(8);
    expect(pool.stats).toMatchObject({ peakRunning: 8, completed: 40, running: 0, queued: 0, workers: 2 });
    expect(stack.ledger.totals({ project: 'acme/shop', role: 'developer' }).calls).toBe(40);
  });

  it('starts waiting tasks by priority, then deadline, then arrival, once every slot is busy', async () => {
    const { pool } = await setup(1, { latencyMs: 100 });
    const started: string[] = [];
    const task = (taskId: string, order: { priority?: number; deadline?: number } = {}) =>
      pool.run({ taskId, account, prompt: `Plan ${taskId}.`, ...order }).then(() => started.push(taskId));
    const now = Date.now();
    const runs = [
      task('holds-the-slot'),
      task('low', { priority: 10 }),
      task('default-first'),
      task('due-later', { deadline: now + 60_000 }),
      task('urgent', { priority: 90 }),
      task('due-sooner', { deadline: now + 1_000 }),
      task('default-second'),
    ];
    await expect.poll(() => pool.stats.queued).toBe(6);
    await Promise.all(runs);
    // With one slot, tasks finish in the order they started.
    expect(started).toEqual(['holds-the-slot', 'urgent', 'due-sooner', 'due-later', 'default-first', 'default-second', 'low']);
    expect(pool.stats).toMatchObject({ peakRunning: 1, running: 0, queued: 0, completed: 7 });
  });

  it('extracts a structured answer and checks its keys', async () => {
    const { pool } = await setup(4);
    const outcome = await pool.run({ taskId: 'plan-1', account, prompt: 'Plan the checkout.', output: plan });
    expect(outcome.output.kind).toBe('json');
    const value = outcome.output.kind === 'json' ? outcome.output.value : {};
    expect(typeof value.title).toBe('string');
    expect(Array.isArray(value.steps)).toBe(true);
    expect(typeof value.effort).toBe('number');
    expect(outcome.repairs).toBe(0);
  });

  it('repairs a malformed answer with a follow-up prompt', async () => {
    const { stack, pool } = await setup(4);
    stack.server.failNext(1, { type: 'malformed' });
    const outcome = await pool.run({ taskId: 'plan-2', account, prompt: 'Plan the cart.', output: plan });
    expect(outcome.output.kind).toBe('json');
    expect(outcome.repairs).toBe(1);
    expect(outcome.calls.map((c) => c.callId)).toEqual(['acme/developers/acme/shop/plan-2/0/0', 'acme/developers/acme/shop/plan-2/0/1']);
    expect(stack.server.stats().completions).toBe(2);
  });

  it('fails with the reason once the repair prompts are used up', async () => {
    const { stack, pool } = await setup(4, { maxRepairs: 2 });
    stack.server.failNext(3, { type: 'malformed' });
    const error = await pool
      .run({ taskId: 'plan-3', account, prompt: 'Plan the search.', output: plan })
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(MalformedOutputError);
    expect(error).toMatchObject({
      code: RuntimeErrorCode.MalformedOutput,
      taskId: 'plan-3',
      attempts: 3,
      reason: 'the answer holds no complete JSON object',
    });
    expect(stack.server.stats().completions).toBe(3);
  });

  it('stops a task that keeps producing the same output', async () => {
    const { stack, pool } = await setup(4);
    const again = (step: number) => pool.run({ taskId: 'review-1', step, account, prompt: 'Review the cart module.' });
    await again(0);
    await again(1);
    const error = await again(2).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(StuckLoopError);
    expect(error).toMatchObject({ code: RuntimeErrorCode.StuckLoop, taskId: 'acme/shop/review-1', repeats: 3 });
    expect(stack.server.stats().completions).toBe(3);
    // A different task with the same prompt is not stuck, nor is this one once forgotten.
    await expect(pool.run({ taskId: 'review-2', account, prompt: 'Review the cart module.' })).resolves.toMatchObject({
      taskId: 'review-2',
    });
    pool.forgetTask('acme/shop', 'review-1');
    await expect(again(3)).resolves.toMatchObject({ taskId: 'review-1' });
  });

  it('fails a task whose prompt names a variable it does not supply, without a call', async () => {
    const { stack, pool } = await setup(4);
    await expect(
      pool.run({ taskId: 'bad', account, prompt: 'Build {{feature}} for {{client}}.', vars: { client: 'acme' } }),
    ).rejects.toThrow(InvalidTaskError);
    expect(stack.server.stats().requests).toBe(0);
  });

  it('passes a budget refusal through as the project’s BudgetExceeded', async () => {
    const { stack, pool } = await setup(4);
    stack.budgets.setLimit('project', 'acme/shop', { maxCostUSD: 0.000001, onExceeded: 'Fail' });
    const error = await pool.run({ taskId: 't', account, prompt: 'Plan.' }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(error).toMatchObject({ onExceeded: 'Fail', scope: { level: 'project', id: 'acme/shop' } });
    expect(stack.server.stats().requests).toBe(0);
  });
});
