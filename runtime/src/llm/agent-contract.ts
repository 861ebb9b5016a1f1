/**
 * The contract between an AgentPool (main thread) and its agent workers, as two interfaces:
 * `AgentWorkerApi`, the task function piscina runs in a worker, and `AgentHostApi`, which the
 * main thread serves to each worker over comlink on a long-lived MessagePort, so a worker can
 * ask for LLM calls while the budgets, limits and journal stay in one place. Every message is
 * a union discriminated on `type`; errors cross as data (`SerializedError`).
 */
import type { MessagePort } from 'node:worker_threads';
import type { Endpoint } from 'comlink';
import type { CallResult } from './client.js';
import type { SerializedError } from './errors.js';
import type { ChatMessage, Usage } from './providers/provider.js';

/** The type of one key of a structured answer. */
export type FieldType = 'string' | 'number' | 'boolean' | 'string[]' | 'object';

/** What a task's answer must be: free text, or a JSON object with the given keys. */
export type OutputSpec = { kind: 'text' } | { kind: 'json'; fields: Readonly<Record<string, FieldType>> };

/** A task's answer, parsed as its OutputSpec asked. */
export type TaskOutput = { kind: 'text'; text: string } | { kind: 'json'; value: Record<string, unknown> };

/** main → worker: one agent task, piscina's task payload. */
export interface AgentTask {
  type: 'agent-task';
  /** Unique among the pool's running tasks; host requests name it. */
  runId: number;
  taskId: string;
  /** The task's call ids are `<callPrefix>/<attempt>`; deterministic, so journaled results are found again. */
  callPrefix: string;
  prompt: { template: string; vars: Readonly<Record<string, string>> };
  output: OutputSpec;
  /** Repair prompts after a malformed answer before the task fails. */
  maxRepairs: number;
}

/** One LLM call of a task, as the worker reports it. */
export interface CallSummary {
  callId: string;
  source: CallResult['source'];
  usage: Usage;
  costUSD: number;
  attempts: number;
}

/** worker → main: how a task ended. */
export type AgentTaskResult =
  | { type: 'done'; runId: number; output: TaskOutput; calls: CallSummary[] }
  | { type: 'failed'; runId: number; error: SerializedError; calls: CallSummary[] };

/** What piscina runs in a worker (the worker module's default export). */
export interface AgentWorkerApi {
  run(task: AgentTask): Promise<AgentTaskResult>;
}

/** worker → main: an LLM call for a running task. */
export interface HostCompletionRequest {
  type: 'complete';
  runId: number;
  callId: string;
  messages: ChatMessage[];
  /** Counted in the worker, so the main thread does not tokenize again. */
  promptTokens: number;
  responseFormat: 'text' | 'json';
}

/** main → worker: the call's result, or its error as data. */
export type HostCompletionReply = { type: 'result'; result: CallResult } | { type: 'error'; error: SerializedError };

/** What the main thread serves each worker. */
export interface AgentHostApi {
  complete(request: HostCompletionRequest): Promise<HostCompletionReply>;
}

/** The first thing a worker posts on its parent port: its end of the host channel. */
export interface HostPortMessage {
  type: 'troupe.agent-host-port';
  port: MessagePort;
}

/** The pool-wide settings every worker starts with (piscina `workerData`). */
export interface AgentWorkerData {
  /** AgentPool.spec.systemPrompt; empty for none. */
  systemPrompt: string;
}

/** A worker_threads MessagePort as a comlink Endpoint. */
export function portEndpoint(port: MessagePort): Endpoint {
  const wrappers = new Map<unknown, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: readonly unknown[]) => port.postMessage(message, transfer as never),
    addEventListener: (_type: string, listener: unknown) => {
      const wrapper = (data: unknown) => {
        const event = { data } as never;
        if (typeof listener === 'function') listener(event);
        else (listener as { handleEvent(event: never): void }).handleEvent(event);
      };
      wrappers.set(listener, wrapper);
      port.on('message', wrapper);
    },
    removeEventListener: (_type: string, listener: unknown) => {
      const wrapper = wrappers.get(listener);
      if (wrapper === undefined) return;
      port.off('message', wrapper);
      wrappers.delete(listener);
    },
    start: () => port.start(),
  } as Endpoint;
}
