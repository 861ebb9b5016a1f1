/**
 * The `openai` provider through the official SDK: chat completions, whole or streamed over SSE
 * with `include_usage`, so a streamed call reports its tokens too. Also fits any
 * OpenAI-compatible endpoint (vLLM, LiteLLM, the simulated server) through `baseURL`.
 */
import OpenAI, { APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { RuntimeError } from '../../errors.js';
import { withDefaults } from '../options.js';
import {
  HOSTED_PROVIDER_DEFAULTS,
  checkProviderOptions,
  providerError,
  type Completion,
  type CompletionRequest,
  type FinishReason,
  type HostedProviderOptions,
  type LlmProvider,
  type StreamEvent,
} from './provider.js';

/**
 * @example
 * const openai = new OpenAiProvider({ name: 'openai', apiKey: secret });
 * const answer = await openai.complete({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], maxOutputTokens: 64 });
 */
export class OpenAiProvider implements LlmProvider {
  readonly type = 'openai';
  readonly name: string;
  private readonly client: OpenAI;
  private readonly apiKey: string;

  constructor(options: HostedProviderOptions) {
    const resolved = withDefaults(HOSTED_PROVIDER_DEFAULTS, options);
    checkProviderOptions('OpenAiProvider', resolved);
    this.name = resolved.name;
    this.apiKey = resolved.apiKey;
    // Retries belong to the LlmClient, which honours Retry-After and counts every attempt.
    this.client = new OpenAI({ apiKey: resolved.apiKey, baseURL: resolved.baseURL, timeout: resolved.timeoutMs, maxRetries: 0 });
  }

  async complete(request: CompletionRequest): Promise<Completion> {
    try {
      const response = await this.client.chat.completions.create(this.body(request), { signal: request.signal });
      const choice = response.choices[0];
      return {
        text: choice?.message.content ?? '',
        usage: { inputTokens: response.usage?.prompt_tokens ?? 0, outputTokens: response.usage?.completion_tokens ?? 0 },
        model: response.model,
        finishReason: finishReason(choice?.finish_reason),
      };
    } catch (error) {
      throw this.failure(error);
    }
  }

  async *stream(request: CompletionRequest): AsyncIterable<StreamEvent> {
    let text = '';
    let model = request.model;
    let finish: FinishReason = 'other';
    let usage = { inputTokens: 0, outputTokens: 0 };
    try {
      const stream = await this.client.chat.completions.create(
        { ...this.body(request), stream: true, stream_options: { include_usage: true } },
        { signal: request.signal },
      );
      for await (const chunk of stream) {
        model = chunk.model;
        const choice = chunk.choices[0];
        const delta = choice?.delta.content;
        if (delta) {
          text += delta;
          yield { type: 'text', text: delta };
        }
        if (choice?.finish_reason) finish = finishReason(choice.finish_reason);
        // With include_usage the last chunk has no choices and carries the whole call's usage.
        if (chunk.usage) usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens };
      }
    } catch (error) {
      throw this.failure(error);
    }
    yield { type: 'done', completion: { text, usage, model, finishReason: finish } };
  }

  private body(request: CompletionRequest) {
    return {
      model: request.model,
      messages: request.messages.map((message) => ({ role: message.role, content: message.content })),
      max_completion_tokens: request.maxOutputTokens,
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(request.responseFormat === 'json' ? { response_format: { type: 'json_object' as const } } : {}),
    };
  }

  private failure(error: unknown): Error {
    if (!(error instanceof APIError))
      return error instanceof RuntimeError ? error : providerError(this.name, { message: String(error) }, [this.apiKey]);
    return providerError(
      this.name,
      {
        status: error.status,
        headers: error.headers,
        message: error.message,
        timedOut: error instanceof APIConnectionTimeoutError,
        aborted: error instanceof APIUserAbortError,
      },
      [this.apiKey],
    );
  }
}

function finishReason(reason: string | null | undefined): FinishReason {
  return reason === 'stop' ? 'stop' : reason === 'length' ? 'length' : 'other';
}
