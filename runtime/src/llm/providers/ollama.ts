/**
 * The `ollama` provider through the official client: /api/chat, whole or streamed as NDJSON;
 * usage is the final message's `prompt_eval_count` and `eval_count`. Local models are usually
 * unpriced, yet their tokens still count against token budgets.
 */
import { Ollama, type ChatResponse } from 'ollama';
import { RuntimeError } from '../../errors.js';
import { withDefaults } from '../options.js';
import {
  checkProviderOptions,
  providerError,
  type Completion,
  type CompletionRequest,
  type FinishReason,
  type LlmProvider,
  type StreamEvent,
} from './provider.js';

export interface OllamaProviderOptions {
  /** The ModelProvider's name. */
  name: string;
  /** Default http://127.0.0.1:11434. */
  baseURL?: string;
  /** Sent as a bearer token, for an Ollama behind an authenticating proxy or ollama.com. */
  apiKey?: string;
  /** Per request (default 300 s: a local model may load first). */
  timeoutMs?: number;
}

export const OLLAMA_PROVIDER_DEFAULTS = {
  baseURL: 'http://127.0.0.1:11434',
  timeoutMs: 300_000,
} as const satisfies Partial<OllamaProviderOptions>;

/**
 * @example
 * const local = new OllamaProvider({ name: 'ollama' });
 * const answer = await local.complete({ model: 'llama3.2', messages, maxOutputTokens: 512 });
 */
export class OllamaProvider implements LlmProvider {
  readonly type = 'ollama';
  readonly name: string;
  private readonly options: Required<Omit<OllamaProviderOptions, 'apiKey'>> & { apiKey?: string };

  constructor(options: OllamaProviderOptions) {
    this.options = withDefaults(OLLAMA_PROVIDER_DEFAULTS, options);
    checkProviderOptions('OllamaProvider', this.options);
    this.name = this.options.name;
  }

  async complete(request: CompletionRequest): Promise<Completion> {
    try {
      const response = await this.client(request.signal).chat({ ...this.body(request), stream: false });
      return completion(response, response.message.content);
    } catch (error) {
      throw this.failure(error);
    }
  }

  async *stream(request: CompletionRequest): AsyncIterable<StreamEvent> {
    let text = '';
    let last: ChatResponse | undefined;
    try {
      for await (const part of await this.client(request.signal).chat({ ...this.body(request), stream: true })) {
        if (part.message.content) {
          text += part.message.content;
          yield { type: 'text', text: part.message.content };
        }
        last = part;
      }
    } catch (error) {
      throw this.failure(error);
    }
    if (last?.done !== true) throw providerError(this.name, { message: 'the stream ended before its final message' }, []);
    yield { type: 'done', completion: completion(last, text) };
  }

  /**
   * A client per request: the Ollama client has no per-request signal, so the request's own
   * signal and timeout go into the fetch it is given. Error statuses are turned into
   * ProviderErrors there too, where the Retry-After header is still at hand.
   */
  private client(signal: AbortSignal | undefined): Ollama {
    const { baseURL, apiKey, timeoutMs } = this.options;
    return new Ollama({
      host: baseURL,
      ...(apiKey === undefined ? {} : { headers: { Authorization: `Bearer ${apiKey}` } }),
      fetch: async (input, init) => {
        const timeout = AbortSignal.timeout(timeoutMs);
        const signals = [timeout, ...(init?.signal ? [init.signal] : []), ...(signal ? [signal] : [])];
        let response: Response;
        try {
          response = await fetch(input, { ...init, signal: AbortSignal.any(signals) });
        } catch (error) {
          throw providerError(
            this.name,
            { message: String(error), timedOut: timeout.aborted, aborted: !timeout.aborted && signals.some((s) => s.aborted) },
            [apiKey],
          );
        }
        if (!response.ok) {
          const body = await response.text();
          throw providerError(
            this.name,
            { status: response.status, headers: response.headers, message: `${response.status} ${errorText(body)}` },
            [apiKey],
          );
        }
        return response;
      },
    });
  }

  private body(request: CompletionRequest) {
    return {
      model: request.model,
      messages: request.messages.map((message) => ({ role: message.role, content: message.content })),
      options: { num_predict: request.maxOutputTokens, ...(request.temperature === undefined ? {} : { temperature: request.temperature }) },
      ...(request.responseFormat === 'json' ? { format: 'json' } : {}),
    };
  }

  private failure(error: unknown): Error {
    if (error instanceof RuntimeError) return error;
    const name = error instanceof Error ? error.name : '';
    return providerError(this.name, { message: String(error), timedOut: name === 'TimeoutError', aborted: name === 'AbortError' }, [
      this.options.apiKey,
    ]);
  }
}

function completion(response: ChatResponse, text: string): Completion {
  const finishReason: FinishReason = response.done_reason === 'stop' ? 'stop' : response.done_reason === 'length' ? 'length' : 'other';
  return {
    text,
    usage: { inputTokens: response.prompt_eval_count ?? 0, outputTokens: response.eval_count ?? 0 },
    model: response.model,
    finishReason,
  };
}

/** Ollama answers errors as `{"error": "..."}`; anything else is shown as it came. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // Not JSON: the body itself is the best description there is.
  }
  return body.slice(0, 500);
}
