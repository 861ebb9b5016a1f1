/**
 * The provider contract: one chat completion, whole or streamed, with the token usage the
 * provider itself reported. `openai`, `anthropic`, `ollama` and `simulated` implement it;
 * retries, budgets, limits and the cache live above it, in the LlmClient, so a provider makes
 * exactly one request per call and never retries on its own.
 */
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { redact } from '../../security/redact.js';
import { ProviderError } from '../errors.js';
import type { ChatMessage } from '../tokens.js';

export type { ChatMessage } from '../tokens.js';

/** The provider types a ModelProvider may name (ModelProvider.spec.type). */
export type ProviderType = 'openai' | 'anthropic' | 'ollama' | 'simulated';

/** One chat completion to make. */
export interface CompletionRequest {
  model: string;
  messages: readonly ChatMessage[];
  /** The most tokens the answer may have; also what a budget reserves for the answer. */
  maxOutputTokens: number;
  temperature?: number;
  /** `json` asks for a JSON object where the wire format can say so (OpenAI, Ollama). */
  responseFormat?: 'text' | 'json';
  /**
   * The caller's id of the call (`LlmCall.callId`), the same when a crash makes it ask again.
   * Sent where the wire can carry it (the simulated provider's `Idempotency-Key` header), so the
   * far side can tell a repeated call from a new one.
   */
  callId?: string;
  signal?: AbortSignal;
}

/** Tokens as the provider counted them in its response. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
}

/** Why generation stopped: the model finished, or hit `maxOutputTokens`. */
export type FinishReason = 'stop' | 'length' | 'other';

export interface Completion {
  text: string;
  usage: Usage;
  /** The model that answered, as the provider named it. */
  model: string;
  finishReason: FinishReason;
}

/** What a stream yields: text as it arrives, then the whole completion with its usage. */
export type StreamEvent = { type: 'text'; text: string } | { type: 'done'; completion: Completion };

/**
 * A ModelProvider's client.
 *
 * @example
 * const provider = new OpenAiProvider({ name: 'openai', apiKey });
 * const { text, usage } = await provider.complete({ model: 'gpt-4o-mini', messages, maxOutputTokens: 256 });
 * for await (const event of provider.stream({ model: 'gpt-4o-mini', messages, maxOutputTokens: 256 })) {
 *   if (event.type === 'text') process.stdout.write(event.text);
 * }
 */
export interface LlmProvider {
  /** The ModelProvider's name; errors and circuit breakers are per name. */
  readonly name: string;
  readonly type: ProviderType;
  /** Makes one request. Failures are ProviderErrors saying whether a retry may help. */
  complete(request: CompletionRequest): Promise<Completion>;
  /** Makes one streaming request; the last event carries the usage. */
  stream(request: CompletionRequest): AsyncIterable<StreamEvent>;
  /** Releases what the provider holds open (keep-alive connections), when it holds any. */
  close?(): void;
}

/** Statuses worth another try: throttling, timeouts, conflicts and server-side failures. */
export function isRetriableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 425 || status === 429 || status >= 500;
}

/**
 * The wait a response asks for, in ms: `retry-after-ms` (OpenAI), else `retry-after` as seconds
 * or an HTTP date. Undefined when absent or unreadable.
 */
export function retryAfterMs(headers: { get(name: string): string | null } | undefined, now: number = Date.now()): number | undefined {
  const ms = Number(headers?.get('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers?.get('retry-after');
  if (value === null || value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * A provider failure as a ProviderError: HTTP status and Retry-After when the SDK saw a
 * response, retriable for timeouts and connection failures, and the message with the API key
 * redacted. The SDK's own error is not kept as `cause`: its body may echo the key.
 */
export function providerError(
  provider: string,
  failure: { status?: number; headers?: { get(name: string): string | null }; message: string; timedOut?: boolean; aborted?: boolean },
  secrets: readonly (string | undefined)[],
): ProviderError {
  const message = redact(failure.message, secrets);
  if (failure.aborted) return new ProviderError(provider, `request aborted: ${message}`, { retriable: false });
  if (failure.status === undefined) {
    return new ProviderError(provider, failure.timedOut ? `request timed out: ${message}` : `request failed: ${message}`, {
      retriable: true,
    });
  }
  return new ProviderError(provider, message, {
    status: failure.status,
    retriable: isRetriableStatus(failure.status),
    retryAfterMs: retryAfterMs(failure.headers),
  });
}

/** Checks the options every provider shares, naming the key at fault. */
export function checkProviderOptions(owner: string, options: { name: string; timeoutMs: number; baseURL?: string }): void {
  if (typeof options.name !== 'string' || options.name === '') {
    throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `${owner} option name must be a non-empty string`);
  }
  if (!Number.isInteger(options.timeoutMs) || options.timeoutMs <= 0) {
    throw new RuntimeError(
      RuntimeErrorCode.InvalidOptions,
      `${owner} option timeoutMs must be a positive integer, got ${options.timeoutMs}`,
    );
  }
  if (options.baseURL !== undefined && !URL.canParse(options.baseURL)) {
    throw new RuntimeError(
      RuntimeErrorCode.InvalidOptions,
      `${owner} option baseURL must be a URL, got ${JSON.stringify(options.baseURL)}`,
    );
  }
}

/** Options of a provider reached over the network with an API key (`openai`, `anthropic`). */
export interface HostedProviderOptions {
  /** The ModelProvider's name. */
  name: string;
  apiKey: string;
  /** Default: the SDK's own endpoint. */
  baseURL?: string;
  /** Per request (default 120 s). */
  timeoutMs?: number;
}

export const HOSTED_PROVIDER_DEFAULTS = { timeoutMs: 120_000 } as const satisfies Partial<HostedProviderOptions>;
