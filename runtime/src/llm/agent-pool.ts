/**
 * An AgentPool replica's workers: a piscina pool running agent tasks (agent.worker.ts) with
 * AgentPool.spec.concurrency tasks in flight at most, spread over a few threads that each keep
 * many LLM calls in flight. The workers do the CPU work; their LLM calls come back to this
 * thread (AgentHostApi over comlink), where one LlmCaller — the LlmClient, or JournaledLlm for
 * replay safety — applies budgets, limits, retries and the journal, and where stuck loops are
 * caught per task.
 *
 * Workers load TypeScript sources when this module does (worker-module.ts).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { availableParallelism } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import { expose } from 'comlink';
import { Piscina } from 'piscina';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { workerModule } from '../worker-module.js';
import {
  portEndpoint,
  type AgentHostApi,
  type AgentTask,
  type AgentTaskResult,
  type AgentWorkerData,
  type CallSummary,
  type HostCompletionReply,
  type HostCompletionRequest,
  type OutputSpec,
  type TaskOutput,
} from './agent-contract.js';
import type { LlmCall, LlmCaller } from './client.js';
import { deserializeError, serializeError } from './errors.js';
import type { CallAccount } from './ledger.js';
import { withDefaults } from './options.js';
import type { Usage } from './providers/provider.js';
import { StuckLoopDetector, type RateLimits, type StuckLoopOptions } from './resilience.js';

/** The part of AgentPool.spec a replica's pool runs by. */
export interface AgentPoolSpec {
  role: string;
  model: { provider: string; name: string; temperature?: number; maxOutputTokens?: number };
  /** In-flight LLM calls of this replica, 1..1024. */
  concurrency: number;
  rateLimit?: RateLimits;
  systemPrompt?: string;
}

export interface AgentPoolOptions {
  /** `<namespace>/<name>` of the AgentPool; call ids start with it. */
  name: string;
  spec: AgentPoolSpec;
  /** Who buys calls: JournaledLlm for replay safety (the default composition), or the LlmClient. */
  llm: LlmCaller;
  /** Worker threads (default: the cores less one for this thread, 1..4). */
  threads: number;
  /** Answer from the response cache when it holds the same question (default false). */
  cache: boolean;
  /** Repair prompts after a malformed answer before the task fails (default 2). */
  maxRepairs: number;
  /** Output tokens when neither the task nor the spec says (default 1024). */
  defaultMaxOutputTokens: number;
  stuckLoop: Partial<StuckLoopOptions>;
}

export const AGENT_POOL_DEFAULTS = {
  threads: Math.max(1, Math.min(4, availableParallelism() - 1)),
  cache: false,
  maxRepairs: 2,
  defaultMaxOutputTokens: 1024,
  stuckLoop: {},
} as const satisfies Partial<AgentPoolOptions>;

/** One task for the pool. */
export interface AgentTaskInput {
  /** The domain's task id, stable across its steps: stuck loops are detected per task. */
  taskId: string;
  /** Which run of the task this is (review loops run a task again); part of its call ids. Default 0. */
  step?: number;
  /** Whom the task works for; the role is the pool's. */
  account: Omit<CallAccount, 'role'>;
  /** A template with `{{name}}` placeholders filled from `vars`. */
  prompt: string;
  vars?: Readonly<Record<string, string>>;
  /** Default: free text. */
  output?: OutputSpec;
  /** Default: the spec's maxOutputTokens, else the pool's default. */
  maxOutputTokens?: number;
  /**
   * When every slot is busy, waiting tasks start by priority (higher first, default 50), then
   * by deadline (unix ms, earlier first; none is last), then in the order they came.
   */
  priority?: number;
  deadline?: number;
}

/** A finished task. */
export interface AgentTaskOutcome {
  taskId: string;
  output: TaskOutput;
  calls: CallSummary[];
  /** Calls beyond the first: repair prompts. */
  repairs: number;
  usage: Usage;
  costUSD: number;
}

/** Counters for AgentPool.status (busy, queueDepth). */
export interface AgentPoolStats {
  /** Worker threads alive. */
  workers: number;
  running: number;
  queued: number;
  peakRunning: number;
  completed: number;
  failed: number;
}

const MAX_CONCURRENCY = 1024;

/** A task waiting for a slot, and the order it starts in. */
interface Waiting {
  priority: number;
  deadline: number;
  arrival: number;
  start(): void;
}

const DEFAULT_PRIORITY = 50;

/** Whether `a` starts before `b`. */
function startsBefore(a: Waiting, b: Waiting): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  if (a.deadline !== b.deadline) return a.deadline < b.deadline;
  return a.arrival < b.arrival;
}

/** What the host needs to complete a running task's calls. */
interface RunningTask {
  /** The project's task: what stuck loops are detected per. */
  loopKey: string;
  account: CallAccount;
  maxOutputTokens: number;
  /** Runs a call in the task's async context: calls come in on a worker's port, outside it (its trace, for one). */
  inTask: <R>(call: () => R) => R;
}

/**
 * @example
 * const pool = new AgentPool({ name: 'acme/developers', spec: agentPool.spec, llm: journaled, cache: true });
 * const outcome = await pool.run({
 *   taskId: 'impl-3', account: { client: 'acme', project: 'acme/shop', phase: 'implementation' },
 *   prompt: 'Write the {{module}} module.', vars: { module: 'cart' },
 *   output: { kind: 'json', fields: { path: 'string', code: 'string' } },
 * });
 * await pool.close();
 */
export class AgentPool {
  private readonly options: AgentPoolOptions;
  private readonly piscina: Piscina<AgentTask, AgentTaskResult>;
  private readonly ports = new Set<MessagePort>();
  private readonly running = new Map<number, RunningTask>();
  private readonly waiting: Waiting[] = [];
  private arrivals = 0;
  private readonly loops: StuckLoopDetector;
  private readonly counters: Omit<AgentPoolStats, 'workers'> = { running: 0, queued: 0, peakRunning: 0, completed: 0, failed: 0 };
  private nextRunId = 1;
  private closed = false;

  constructor(options: Pick<AgentPoolOptions, 'name' | 'spec' | 'llm'> & Partial<AgentPoolOptions>) {
    this.options = withDefaults(AGENT_POOL_DEFAULTS, options);
    validate(this.options);
    this.loops = new StuckLoopDetector(this.options.stuckLoop);
    const { threads, spec } = this.options;
    const worker = workerModule(import.meta.url, './agent.worker', 'agent workers');
    this.piscina = new Piscina<AgentTask, AgentTaskResult>({
      filename: worker.filename,
      execArgv: worker.execArgv,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: Math.ceil(spec.concurrency / threads),
      // Workers await their host port between and during tasks; Atomics.wait would block it.
      atomics: 'disabled',
      // The pool keeps its own counters; piscina's timing histograms cost per task.
      recordTiming: false,
      workerData: { systemPrompt: spec.systemPrompt ?? '' } satisfies AgentWorkerData,
    });
    const host: AgentHostApi = { complete: (request) => this.complete(request) };
    this.piscina.on('message', (message: unknown) => {
      if (!isHostPortMessage(message)) return;
      this.ports.add(message.port);
      expose(host, portEndpoint(message.port));
      // The pool's workers keep the process alive while busy; an idle host port must not.
      message.port.unref();
    });
  }

  /** Runs one task; rejects with the task's RuntimeError (BudgetExceededError, MalformedOutputError, StuckLoopError, …). */
  async run(input: AgentTaskInput): Promise<AgentTaskOutcome> {
    if (this.closed) throw new RuntimeError(RuntimeErrorCode.Closed, `agent pool ${this.options.name} is closed`);
    await this.slot(input);
    const runId = this.nextRunId;
    this.nextRunId += 1;
    const { spec, defaultMaxOutputTokens, maxRepairs, name } = this.options;
    this.running.set(runId, {
      loopKey: `${input.account.project}/${input.taskId}`,
      account: { ...input.account, role: spec.role },
      maxOutputTokens: input.maxOutputTokens ?? spec.model.maxOutputTokens ?? defaultMaxOutputTokens,
      inTask: AsyncLocalStorage.snapshot(),
    });
    try {
      const result = await this.piscina.run({
        type: 'agent-task',
        runId,
        taskId: input.taskId,
        callPrefix: `${name}/${input.account.project}/${input.taskId}/${input.step ?? 0}`,
        prompt: { template: input.prompt, vars: input.vars ?? {} },
        output: input.output ?? { kind: 'text' },
        maxRepairs,
      });
      if (result.type === 'failed') throw deserializeError(result.error);
      this.counters.completed += 1;
      return outcome(input.taskId, result.output, result.calls);
    } catch (error) {
      this.counters.failed += 1;
      if (error instanceof RuntimeError) throw error;
      // Only a worker that died or could not load throws anything else; the task may run again.
      throw new RuntimeError(
        RuntimeErrorCode.Unavailable,
        `agent worker of pool ${name} failed task ${input.taskId}: ${toError(error).message}`,
        {
          retriable: true,
          cause: error,
        },
      );
    } finally {
      this.running.delete(runId);
      this.release();
    }
  }

  get stats(): AgentPoolStats {
    return { workers: this.piscina.threads.length, ...this.counters };
  }

  /** Forgets a finished task's outputs (stuck-loop detection), once it will not run again. */
  forgetTask(project: string, taskId: string): void {
    this.loops.forget(`${project}/${taskId}`);
  }

  /** Lets running tasks finish, stops the workers and closes their host ports. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscina.close();
    for (const port of this.ports) port.close();
    this.ports.clear();
  }

  /** The host side of a worker's LLM call. Never throws: errors go back as data. */
  private async complete(request: HostCompletionRequest): Promise<HostCompletionReply> {
    const task = this.running.get(request.runId);
    try {
      if (task === undefined)
        throw new RuntimeError(RuntimeErrorCode.InvalidTask, `no running task ${request.runId} in pool ${this.options.name}`);
      const { spec, cache } = this.options;
      const call: LlmCall = {
        callId: request.callId,
        provider: spec.model.provider,
        model: spec.model.name,
        messages: request.messages,
        maxOutputTokens: task.maxOutputTokens,
        temperature: spec.model.temperature,
        responseFormat: request.responseFormat,
        promptTokens: request.promptTokens,
        account: task.account,
        cache,
        rateLimit: spec.rateLimit,
      };
      const result = await task.inTask(() => this.options.llm.complete(call));
      this.loops.observe(task.loopKey, result.callId, result.text);
      return { type: 'result', result };
    } catch (error) {
      return { type: 'error', error: serializeError(error) };
    }
  }

  private async slot(input: AgentTaskInput): Promise<void> {
    if (this.counters.running < this.options.spec.concurrency) {
      this.counters.running += 1;
    } else {
      this.counters.queued += 1;
      // release() hands its slot over as it is: `running` does not change.
      await new Promise<void>((start) =>
        this.waiting.push({
          priority: input.priority ?? DEFAULT_PRIORITY,
          deadline: input.deadline ?? Number.POSITIVE_INFINITY,
          arrival: this.arrivals++,
          start,
        }),
      );
      this.counters.queued -= 1;
    }
    this.counters.peakRunning = Math.max(this.counters.peakRunning, this.counters.running);
  }

  private release(): void {
    if (this.waiting.length === 0) {
      this.counters.running -= 1;
      return;
    }
    let next = 0;
    for (let i = 1; i < this.waiting.length; i++) if (startsBefore(this.waiting[i]!, this.waiting[next]!)) next = i;
    this.waiting.splice(next, 1)[0]!.start();
  }
}

function outcome(taskId: string, output: TaskOutput, calls: CallSummary[]): AgentTaskOutcome {
  const usage = { inputTokens: 0, outputTokens: 0 };
  let costUSD = 0;
  for (const call of calls) {
    usage.inputTokens += call.usage.inputTokens;
    usage.outputTokens += call.usage.outputTokens;
    costUSD += call.costUSD;
  }
  return { taskId, output, calls, repairs: Math.max(0, calls.length - 1), usage, costUSD };
}

function isHostPortMessage(message: unknown): message is { type: 'troupe.agent-host-port'; port: MessagePort } {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'troupe.agent-host-port';
}

function validate(options: AgentPoolOptions): void {
  const refuse = (key: string, rule: string, value: unknown) =>
    new RuntimeError(RuntimeErrorCode.InvalidOptions, `AgentPool ${options.name} option ${key} ${rule}, got ${JSON.stringify(value)}`);
  if (typeof options.name !== 'string' || options.name === '') throw refuse('name', 'must be a non-empty string', options.name);
  const { spec } = options;
  if (!Number.isInteger(spec.concurrency) || spec.concurrency < 1 || spec.concurrency > MAX_CONCURRENCY) {
    throw refuse('spec.concurrency', `must be an integer in 1..${MAX_CONCURRENCY}`, spec.concurrency);
  }
  if (typeof spec.role !== 'string' || spec.role === '') throw refuse('spec.role', 'must be a non-empty string', spec.role);
  if (typeof spec.model?.provider !== 'string' || spec.model.provider === '')
    throw refuse('spec.model.provider', 'must name a ModelProvider', spec.model?.provider);
  if (typeof spec.model.name !== 'string' || spec.model.name === '')
    throw refuse('spec.model.name', 'must be a non-empty string', spec.model.name);
  if (spec.model.maxOutputTokens !== undefined && !(Number.isInteger(spec.model.maxOutputTokens) && spec.model.maxOutputTokens > 0)) {
    throw refuse('spec.model.maxOutputTokens', 'must be a positive integer', spec.model.maxOutputTokens);
  }
  if (!Number.isInteger(options.threads) || options.threads < 1) throw refuse('threads', 'must be a positive integer', options.threads);
  if (!Number.isInteger(options.maxRepairs) || options.maxRepairs < 0)
    throw refuse('maxRepairs', 'must be an integer ≥ 0', options.maxRepairs);
  if (!Number.isInteger(options.defaultMaxOutputTokens) || options.defaultMaxOutputTokens < 1) {
    throw refuse('defaultMaxOutputTokens', 'must be a positive integer', options.defaultMaxOutputTokens);
  }
}
