/**
 * An agent worker (piscina): runs agent tasks — renders the prompt, counts its tokens, asks the
 * host for the LLM call, parses and validates the answer, sends bounded repair prompts when it
 * is malformed, and extracts the structured result. Tasks are async and spend nearly all their
 * time awaiting the host, so one worker keeps many LLM calls in flight
 * (piscina's concurrentTasksPerWorker).
 *
 * On load it posts its end of a MessageChannel to the pool, which serves the AgentHostApi on
 * the other end (comlink).
 */
import { MessageChannel, parentPort, workerData } from 'node:worker_threads';
import { wrap } from 'comlink';
import {
  portEndpoint,
  type AgentHostApi,
  type AgentTask,
  type AgentTaskResult,
  type AgentWorkerData,
  type CallSummary,
  type HostPortMessage,
} from './agent-contract.js';
import { InvalidTaskError, MalformedOutputError, serializeError } from './errors.js';
import type { ChatMessage } from './providers/provider.js';
import { formatInstructions, parseOutput, renderTemplate, repairPrompt } from './structured.js';
import { countChatTokens } from './tokens.js';

const settings = workerData as AgentWorkerData;
const channel = new MessageChannel();
parentPort?.postMessage({ type: 'troupe.agent-host-port', port: channel.port2 } satisfies HostPortMessage, [channel.port2]);
const host = wrap<AgentHostApi>(portEndpoint(channel.port1));

/** The AgentWorkerApi's `run`: one task from prompt to validated output. */
export default async function run(task: AgentTask): Promise<AgentTaskResult> {
  const calls: CallSummary[] = [];
  const rendered = renderTemplate(task.prompt.template, task.prompt.vars);
  if (!rendered.ok) {
    return {
      type: 'failed',
      runId: task.runId,
      error: serializeError(new InvalidTaskError(task.taskId, `the prompt needs ${rendered.missing.join(', ')}`)),
      calls,
    };
  }
  const instructions = formatInstructions(task.output);
  const messages: ChatMessage[] = [
    ...(settings.systemPrompt === '' ? [] : [{ role: 'system' as const, content: settings.systemPrompt }]),
    { role: 'user', content: instructions === '' ? rendered.text : `${rendered.text}\n\n${instructions}` },
  ];
  for (let attempt = 0; ; attempt += 1) {
    const reply = await host.complete({
      type: 'complete',
      runId: task.runId,
      callId: `${task.callPrefix}/${attempt}`,
      messages,
      promptTokens: countChatTokens(messages),
      responseFormat: task.output.kind === 'json' ? 'json' : 'text',
    });
    if (reply.type === 'error') return { type: 'failed', runId: task.runId, error: reply.error, calls };
    const { result } = reply;
    calls.push({ callId: result.callId, source: result.source, usage: result.usage, costUSD: result.costUSD, attempts: result.attempts });
    const parsed = parseOutput(task.output, result.text);
    if (parsed.ok) return { type: 'done', runId: task.runId, output: parsed.output, calls };
    if (attempt >= task.maxRepairs) {
      return {
        type: 'failed',
        runId: task.runId,
        error: serializeError(new MalformedOutputError(task.taskId, parsed.reason, attempt + 1)),
        calls,
      };
    }
    messages.push({ role: 'assistant', content: result.text }, { role: 'user', content: repairPrompt(task.output, parsed.reason) });
  }
}
