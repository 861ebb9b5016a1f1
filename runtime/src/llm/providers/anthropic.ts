/**
 * The `anthropic` provider through the official SDK: the Messages API, whole or streamed over
 * SSE. System messages travel in `system`; usage comes from `message_start` (input) and
 * `message_delta` (output) when streaming.
 */
import Anthropic, { APIConnectionTimeoutError, APIError, APIUserAbortError } from '@anthropic-ai/sdk';
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
 * const claude = new AnthropicProvider({ name: 'anthropic', apiKey: secret });
 * const answer = await claude.complete({ model: 'claude-sonnet-4-5', messages, maxOutputTokens: 1024 });
 */
export class AnthropicProvider implements LlmProvider {
  readonly type = 'anthropic';
  readonly name: string;
  private readonly client: Anthropic;
  private readonly apiKey: string;

  constructor(options: HostedProviderOptions) {
    const resolved = withDefaults(HOSTED_PROVIDER_DEFAULTS, options);
    checkProviderOptions('AnthropicProvider', resolved);
    this.name = resolved.name;
    this.apiKey = resolved.apiKey;
    // Retries belong to the LlmClient, which honours Retry-After and counts every attempt.
    this.client = new Anthropic({ apiKey: resolved.apiKey, baseURL: resolved.baseURL, timeout: resolved.timeoutMs, maxRetries: 0 });
  }

  async complete(request: CompletionRequest): Promise<Completion> {
    try {
      const message = await this.client.messages.create({ ...this.body(request), stream: false }, { signal: request.signal });
      return {
        text: message.content.map((block) => (block.type === 'text' ? block.text : '')).join(''),
        usage: { inputTokens: inputTokens(message.usage), outputTokens: message.usage.output_tokens },
        model: message.model,
        finishReason: finishReason(message.stop_reason),
      };
    } catch (error) {
      throw this.failure(error);
    }
  }

  async *stream(request: CompletionRequest): AsyncIterable<StreamEvent> {
    let text = '';
    let model = request.model;
    let finish: FinishReason = 'other';
    const usage = { inputTokens: 0, outputTokens: 0 };
    try {
      const events = await this.client.messages.create({ ...this.body(request), stream: true }, { signal: request.signal });
      for await (const event of events) {
        switch (event.type) {
          case 'message_start':
            model = event.message.model;
            usage.inputTokens = inputTokens(event.message.usage);
            break;
          case 'content_block_delta':
            if (event.delta.type === 'text_delta') {
              text += event.delta.text;
              yield { type: 'text', text: event.delta.text };
            }
            break;
          case 'message_delta':
            // Cumulative for the whole message, so the last one is the total.
            usage.outputTokens = event.usage.output_tokens;
            finish = finishReason(event.delta.stop_reason);
            break;
          default:
            break;
        }
      }
    } catch (error) {
      throw this.failure(error);
    }
    yield { type: 'done', completion: { text, usage, model, finishReason: finish } };
  }

  private body(request: CompletionRequest) {
    const system = request.messages.filter((message) => message.role === 'system').map((message) => message.content);
    return {
      model: request.model,
      max_tokens: request.maxOutputTokens,
      ...(system.length > 0 ? { system: system.join('\n\n') } : {}),
      messages: request.messages.flatMap((message) =>
        message.role === 'system' ? [] : [{ role: message.role, content: message.content }],
      ),
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
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

/** Cached prompt tokens are reported apart from `input_tokens`; all of them were read. */
function inputTokens(usage: {
  input_tokens: number | null;
  cache_creation_input_tokens: number | null;
  cache_read_input_tokens: number | null;
}): number {
  return (usage.input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
}

function finishReason(reason: string | null | undefined): FinishReason {
  return reason === 'end_turn' || reason === 'stop_sequence' ? 'stop' : reason === 'max_tokens' ? 'length' : 'other';
}
