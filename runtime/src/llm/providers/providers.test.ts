import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeErrorCode } from '../../errors.js';
import { ProviderError } from '../errors.js';
import { SimulatedServer } from '../simulated-server.js';
import { AnthropicProvider } from './anthropic.js';
import { createProvider } from './create-provider.js';
import { OllamaProvider } from './ollama.js';
import { OpenAiProvider } from './openai.js';
import type { CompletionRequest, LlmProvider, StreamEvent } from './provider.js';
import { simulateAnswer, SimulatedProvider } from './simulated.js';

const API_KEY = 'sk-test-0123456789abcdef';
const SEED = 42;

const request: CompletionRequest = {
  model: 'sim-large',
  messages: [
    { role: 'system', content: 'You are the architect of a small web shop.' },
    { role: 'user', content: 'Describe the order service in a few sentences.' },
  ],
  maxOutputTokens: 48,
};

let server: SimulatedServer;

beforeAll(async () => {
  // 300 tokens/s in 50 ms ticks: a 48-token answer streams in several chunks.
  server = await SimulatedServer.start({ latencyMs: 5, tokensPerSecond: 300, seed: SEED, apiKey: API_KEY });
});

afterAll(async () => {
  await server.close();
});

const providers: [string, () => LlmProvider][] = [
  ['openai (official SDK, chat completions)', () => new OpenAiProvider({ name: 'openai', apiKey: API_KEY, baseURL: server.openaiBaseURL })],
  ['anthropic (official SDK, messages)', () => new AnthropicProvider({ name: 'anthropic', apiKey: API_KEY, baseURL: server.url })],
  ['ollama (official client, /api/chat)', () => new OllamaProvider({ name: 'ollama', apiKey: API_KEY, baseURL: server.url })],
  ['simulated over HTTP (OpenAI wire)', () => new SimulatedProvider({ name: 'simulated', apiKey: API_KEY, baseURL: server.openaiBaseURL })],
];

async function collect(stream: AsyncIterable<StreamEvent>): Promise<{ texts: string[]; done: StreamEvent | undefined }> {
  const texts: string[] = [];
  let done: StreamEvent | undefined;
  for await (const event of stream) {
    if (event.type === 'text') texts.push(event.text);
    else done = event;
  }
  return { texts, done };
}

describe.each(providers)('%s against the simulated server', (_name, create) => {
  const expected = simulateAnswer(request, SEED);

  it('completes with the text and the usage the server reported', async () => {
    const provider = create();
    const before = server.stats().completions;
    const completion = await provider.complete(request);
    expect(completion.text).toBe(expected.text);
    expect(completion.usage).toEqual(expected.usage);
    expect(completion.usage.outputTokens).toBeGreaterThan(0);
    expect(completion.model).toBe('sim-large');
    expect(completion.finishReason).toBe(expected.finishReason);
    expect(server.stats().completions).toBe(before + 1);
  });

  it('streams the text in several chunks and ends with the usage', async () => {
    const { texts, done } = await collect(create().stream(request));
    expect(texts.length).toBeGreaterThan(1);
    expect(texts.join('')).toBe(expected.text);
    expect(done).toEqual({
      type: 'done',
      completion: { text: expected.text, usage: expected.usage, model: 'sim-large', finishReason: expected.finishReason },
    });
  });

  it('reports a 429 with its Retry-After as a retriable RATE_LIMITED error', async () => {
    server.failNext(1, { type: 'status', status: 429, retryAfterSeconds: 3 });
    const error = await create()
      .complete(request)
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ code: RuntimeErrorCode.RateLimited, status: 429, retryAfterMs: 3_000, retriable: true });
  });

  it('reports a 500 as retriable and a 400 as not', async () => {
    server.failNext(1, { type: 'status', status: 500 });
    await expect(create().complete(request)).rejects.toMatchObject({ code: RuntimeErrorCode.ProviderFailed, status: 500, retriable: true });
    server.failNext(1, { type: 'status', status: 400, message: 'bad request' });
    await expect(create().complete(request)).rejects.toMatchObject({
      code: RuntimeErrorCode.ProviderFailed,
      status: 400,
      retriable: false,
    });
  });
});

describe('the simulated server', () => {
  it('counts what it sold per call, by the call id the simulated provider sends, so repeats stand apart', async () => {
    const provider = new SimulatedProvider({ name: 'simulated', apiKey: API_KEY, baseURL: server.openaiBaseURL });
    const before = server.stats();
    await provider.complete({ ...request, callId: 'acme/shop/req-1/0' });
    await provider.complete({ ...request, callId: 'acme/shop/req-1/0' });
    await provider.complete({ ...request, callId: 'acme/shop/req-2/0' });
    await provider.complete(request);
    const after = server.stats();
    expect(after.completions - before.completions).toBe(4);
    expect(after.callIds - before.callIds).toBe(2);
    const usage = simulateAnswer(request, SEED).usage;
    expect(server.answeredCalls().get('acme/shop/req-1/0')).toEqual({ answers: 2, ...usage, firstSoldAt: expect.any(Number) });
    expect(server.answeredCalls().get('acme/shop/req-2/0')).toEqual({ answers: 1, ...usage, firstSoldAt: expect.any(Number) });
    expect(server.answeredCalls().get('acme/shop/req-1/0')!.firstSoldAt).toBeLessThanOrEqual(
      server.answeredCalls().get('acme/shop/req-2/0')!.firstSoldAt,
    );
  });
});

describe('provider errors', () => {
  it('never carry the API key, even when the server echoes it', async () => {
    const wrongKey = 'sk-wrong-key-that-must-not-leak';
    const all = [
      new OpenAiProvider({ name: 'openai', apiKey: wrongKey, baseURL: server.openaiBaseURL }),
      new AnthropicProvider({ name: 'anthropic', apiKey: wrongKey, baseURL: server.url }),
      new OllamaProvider({ name: 'ollama', apiKey: wrongKey, baseURL: server.url }),
      new SimulatedProvider({ name: 'simulated', apiKey: wrongKey, baseURL: server.openaiBaseURL }),
    ];
    for (const provider of all) {
      const error = (await provider.complete(request).catch((thrown: unknown) => thrown)) as ProviderError;
      expect(error).toMatchObject({ status: 401, retriable: false });
      expect(error.message).toContain('[redacted]');
      expect(JSON.stringify({ message: error.message, stack: error.stack, cause: String(error.cause) })).not.toContain(wrongKey);
    }
  });

  it('turn a stalled request into a retriable timeout', async () => {
    server.failNext(1, { type: 'stall' });
    const provider = new OpenAiProvider({ name: 'openai', apiKey: API_KEY, baseURL: server.openaiBaseURL, timeoutMs: 200 });
    await expect(provider.complete(request)).rejects.toMatchObject({
      code: RuntimeErrorCode.ProviderFailed,
      status: undefined,
      retriable: true,
    });
  });
});

describe('the simulated provider in process', () => {
  it('answers as the server does for the same seed', async () => {
    const local = new SimulatedProvider({ name: 'simulated', latencyMs: 1, tokensPerSecond: Infinity, seed: SEED });
    const completion = await local.complete(request);
    expect(completion.text).toBe(simulateAnswer(request, SEED).text);
    const { texts, done } = await collect(local.stream(request));
    expect(texts.join('')).toBe(completion.text);
    expect(done).toMatchObject({ completion: { usage: completion.usage } });
  });

  it('answers a structured prompt with an object of the keys asked for', () => {
    const answer = simulateAnswer(
      {
        model: 'm',
        maxOutputTokens: 500,
        messages: [
          { role: 'user', content: 'Reply with only a JSON object with the keys: title (string), risks (string[]), effort (number).' },
        ],
      },
      SEED,
    );
    const value = JSON.parse(answer.text) as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['title', 'risks', 'effort']);
    expect(typeof value.title).toBe('string');
    expect(Array.isArray(value.risks)).toBe(true);
    expect(typeof value.effort).toBe('number');
  });
});

describe('createProvider', () => {
  it('builds the client a ModelProvider names, with its price table', () => {
    const pricing = [{ model: 'gpt-4o-mini', inputPerMTokUSD: 0.15, outputPerMTokUSD: 0.6 }];
    const openai = createProvider('openai', { type: 'openai', pricing }, { apiKey: API_KEY });
    expect(openai.provider).toBeInstanceOf(OpenAiProvider);
    expect(openai.pricing.has('gpt-4o-mini')).toBe(true);
    expect(createProvider('claude', { type: 'anthropic' }, { apiKey: API_KEY }).provider).toBeInstanceOf(AnthropicProvider);
    expect(createProvider('local', { type: 'ollama' }).provider).toBeInstanceOf(OllamaProvider);
    expect(createProvider('sim', { type: 'simulated', simulated: { latencyMs: 5 } }).provider).toMatchObject({
      type: 'simulated',
      name: 'sim',
    });
  });

  it('refuses a hosted provider without an API key, naming where it comes from', () => {
    expect(() => createProvider('openai', { type: 'openai' })).toThrow(
      'ModelProvider openai of type openai needs an API key (spec.apiKeySecretRef)',
    );
  });
});
