/**
 * The `simulated` provider: deterministic text from a seed, with realistic token counts, time
 * to first token and tokens per second, so the whole company runs without an API key. In
 * process by default; given a `baseURL` it talks OpenAI chat completions (SSE included) to the
 * simulated HTTP server over a keep-alive node:http client, lean enough that load tests
 * measure the pool rather than an SDK.
 *
 * Structured answers: when a prompt says `JSON object with the keys: a (string), b (number)`
 * (as the agent worker's structured prompts do) or asks for JSON, the answer is such an object.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { withDefaults } from '../options.js';
import { countChatTokens, tokenPieces } from '../tokens.js';
import {
  checkProviderOptions,
  providerError,
  type Completion,
  type CompletionRequest,
  type FinishReason,
  type LlmProvider,
  type StreamEvent,
  type Usage,
} from './provider.js';

/** How the simulated model behaves (ModelProvider.spec.simulated). */
export interface SimulatedModelOptions {
  /** Time to first token (default 200 ms). */
  latencyMs: number;
  /** Generation speed after the first token; `Infinity` answers at once (default 80). */
  tokensPerSecond: number;
  /** Same seed, model and prompt: same answer (default 1). */
  seed: number;
}

export const SIMULATED_MODEL_DEFAULTS = { latencyMs: 200, tokensPerSecond: 80, seed: 1 } as const satisfies SimulatedModelOptions;

/** A simulated answer, as pieces of one token each so that streams can pace them. */
export interface SimulatedAnswer {
  pieces: string[];
  text: string;
  usage: Usage;
  finishReason: FinishReason;
}

/** What the simulated model needs of a request. */
export type SimulatedRequest = Pick<CompletionRequest, 'model' | 'messages' | 'maxOutputTokens' | 'responseFormat'>;

const WORDS = (
  'the a an of to in for on with by from as at and or but not api data user task model code test build ' +
  'plan fix ship run read write store cache queue event actor state phase role spec log error retry call ' +
  'cost token page route query field value type check parse merge split send sync load save list map set ' +
  'time node pod team brief scope step flow gate ready done'
).split(' ');

const JSON_KEYS = /JSON object with the keys: ([^\n]+?)\.(?:\s|$)/;

/**
 * The deterministic answer to a request: prose, or a JSON object when asked for one. Prompt
 * tokens are counted as `countChatTokens` counts them; output tokens are the pieces generated,
 * cut at `maxOutputTokens` (finish reason `length`), as a real model would be cut.
 */
export function simulateAnswer(request: SimulatedRequest, seed: number, options: { malformed?: boolean } = {}): SimulatedAnswer {
  // Roles and texts only, so the same conversation seeds the same answer whichever wire format carried it.
  const conversation = JSON.stringify(request.messages.map((message) => [message.role, message.content]));
  const random = mulberry32(fnv1a(`${seed}\u0000${request.model}\u0000${conversation}`));
  const prompt = request.messages.map((message) => message.content).join('\n');
  const keys = JSON_KEYS.exec(prompt)?.[1];
  const wantsJson = !options.malformed && (keys !== undefined || request.responseFormat === 'json');
  const full = wantsJson ? tokenPieces(jsonAnswer(keys, random)) : proseAnswer(16 + Math.floor(random() * 240), random);
  const pieces = full.slice(0, request.maxOutputTokens);
  return {
    pieces,
    text: pieces.join(''),
    usage: { inputTokens: countChatTokens(request.messages), outputTokens: pieces.length },
    finishReason: pieces.length < full.length ? 'length' : 'stop',
  };
}

/** How long the simulated model takes to produce `outputTokens`. */
export function simulatedDurationMs(model: Pick<SimulatedModelOptions, 'latencyMs' | 'tokensPerSecond'>, outputTokens: number): number {
  return model.latencyMs + (Number.isFinite(model.tokensPerSecond) ? (outputTokens * 1000) / model.tokensPerSecond : 0);
}

/**
 * Splits an answer into timed chunks: the first after the latency, then one every `tickMs`
 * carrying the tokens generated meanwhile (one chunk in all at infinite speed).
 */
export function simulatedChunks(
  model: Pick<SimulatedModelOptions, 'latencyMs' | 'tokensPerSecond'>,
  pieces: readonly string[],
  tickMs = 50,
): { delayMs: number; text: string }[] {
  if (!Number.isFinite(model.tokensPerSecond)) return [{ delayMs: model.latencyMs, text: pieces.join('') }];
  const perTick = Math.max(1, Math.round((model.tokensPerSecond * tickMs) / 1000));
  const chunks: { delayMs: number; text: string }[] = [];
  for (let at = 0; at < pieces.length; at += perTick) {
    chunks.push({
      delayMs: at === 0 ? model.latencyMs : (perTick * 1000) / model.tokensPerSecond,
      text: pieces.slice(at, at + perTick).join(''),
    });
  }
  return chunks.length > 0 ? chunks : [{ delayMs: model.latencyMs, text: '' }];
}

export interface SimulatedProviderOptions extends Partial<SimulatedModelOptions> {
  /** The ModelProvider's name. */
  name: string;
  /** The simulated HTTP server's OpenAI base, e.g. `http://127.0.0.1:4100/v1`; in process when absent. */
  baseURL?: string;
  /** Sent as a bearer token to the server. */
  apiKey?: string;
  /** Per HTTP request (default 120 s). */
  timeoutMs?: number;
}

export const SIMULATED_PROVIDER_DEFAULTS = {
  ...SIMULATED_MODEL_DEFAULTS,
  timeoutMs: 120_000,
} as const satisfies Partial<SimulatedProviderOptions>;

/**
 * @example
 * const simulated = new SimulatedProvider({ name: 'simulated', latencyMs: 50, seed: 7 });
 * const answer = await simulated.complete({ model: 'sim-large', messages, maxOutputTokens: 256 });
 * // Over HTTP, to a SimulatedServer:
 * const remote = new SimulatedProvider({ name: 'simulated', baseURL: `${server.url}/v1` });
 */
export class SimulatedProvider implements LlmProvider {
  readonly type = 'simulated';
  readonly name: string;
  private readonly options: SimulatedProviderOptions & SimulatedModelOptions & { timeoutMs: number };
  private readonly agent: HttpAgent | undefined;
  private readonly endpoint: { protocol: string; hostname: string; port: string; path: string } | undefined;

  constructor(options: SimulatedProviderOptions) {
    this.options = withDefaults(SIMULATED_PROVIDER_DEFAULTS, options);
    checkProviderOptions('SimulatedProvider', this.options);
    checkSimulatedModel('SimulatedProvider', this.options);
    this.name = this.options.name;
    if (this.options.baseURL !== undefined) {
      // Keep-alive without a socket cap: a pool keeps hundreds of calls in flight to one server.
      this.agent = new HttpAgent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
      const url = new URL(`${this.options.baseURL.replace(/\/$/, '')}/chat/completions`);
      if (url.protocol !== 'http:') {
        throw new RuntimeError(
          RuntimeErrorCode.InvalidOptions,
          `SimulatedProvider option baseURL must be an http: URL (the simulated server is plain HTTP), got ${this.options.baseURL}`,
        );
      }
      this.endpoint = { protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, path: url.pathname };
    }
  }

  async complete(request: CompletionRequest): Promise<Completion> {
    if (this.agent !== undefined) return this.completeOverHttp(request, this.agent);
    const answer = simulateAnswer(request, this.options.seed);
    await this.generating(simulatedDurationMs(this.options, answer.pieces.length), request.signal);
    return { text: answer.text, usage: answer.usage, model: request.model, finishReason: answer.finishReason };
  }

  async *stream(request: CompletionRequest): AsyncIterable<StreamEvent> {
    if (this.agent !== undefined) {
      yield* this.streamOverHttp(request, this.agent);
      return;
    }
    const answer = simulateAnswer(request, this.options.seed);
    for (const chunk of simulatedChunks(this.options, answer.pieces)) {
      await this.generating(chunk.delayMs, request.signal);
      if (chunk.text !== '') yield { type: 'text', text: chunk.text };
    }
    yield { type: 'done', completion: { text: answer.text, usage: answer.usage, model: request.model, finishReason: answer.finishReason } };
  }

  private async *failuresAsProviderErrors(chunks: AsyncIterable<string>): AsyncIterable<string> {
    try {
      yield* chunks;
    } catch (error) {
      throw providerError(this.name, { message: String(error) }, [this.options.apiKey]);
    }
  }

  /** The simulated model at work; the caller's abort ends it as any provider's would. */
  private async generating(ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await sleep(ms, undefined, { signal });
    } catch (error) {
      throw providerError(this.name, { message: String(error), aborted: true }, []);
    }
  }

  /** Closes idle keep-alive sockets to the server. */
  close(): void {
    this.agent?.destroy();
  }

  private async completeOverHttp(request: CompletionRequest, agent: HttpAgent): Promise<Completion> {
    const response = await this.post(request, false, agent);
    const body = JSON.parse(await readBody(response)) as OpenAiWireResponse;
    const choice = body.choices[0];
    return {
      text: choice?.message.content ?? '',
      usage: { inputTokens: body.usage.prompt_tokens, outputTokens: body.usage.completion_tokens },
      model: body.model,
      finishReason: choice?.finish_reason === 'length' ? 'length' : choice?.finish_reason === 'stop' ? 'stop' : 'other',
    };
  }

  private async *streamOverHttp(request: CompletionRequest, agent: HttpAgent): AsyncIterable<StreamEvent> {
    const response = await this.post(request, true, agent);
    let text = '';
    let model = request.model;
    let finishReason: FinishReason = 'other';
    let usage: Usage = { inputTokens: 0, outputTokens: 0 };
    let buffered = '';
    response.setEncoding('utf8');
    // A socket that fails mid-stream throws from the iterator: a provider failure like any other.
    const data = this.failuresAsProviderErrors(response as AsyncIterable<string>);
    for await (const received of data) {
      buffered += received;
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
        const chunk = JSON.parse(event.slice('data: '.length)) as OpenAiWireChunk;
        model = chunk.model;
        const choice = chunk.choices[0];
        if (choice?.delta.content) {
          text += choice.delta.content;
          yield { type: 'text', text: choice.delta.content };
        }
        if (choice?.finish_reason)
          finishReason = choice.finish_reason === 'length' ? 'length' : choice.finish_reason === 'stop' ? 'stop' : 'other';
        if (chunk.usage) usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens };
      }
    }
    yield { type: 'done', completion: { text, usage, model, finishReason } };
  }

  /** Sends the request; resolves with a 2xx response, else throws the ProviderError for its status. */
  private post(request: CompletionRequest, stream: boolean, agent: HttpAgent): Promise<IncomingMessage> {
    const { apiKey, timeoutMs } = this.options;
    const body = JSON.stringify({
      model: request.model,
      messages: request.messages,
      max_completion_tokens: request.maxOutputTokens,
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(request.responseFormat === 'json' ? { response_format: { type: 'json_object' } } : {}),
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    });
    return new Promise((resolve, reject) => {
      let timedOut = false;
      const fail = (error: unknown) =>
        reject(providerError(this.name, { message: String(error), timedOut, aborted: request.signal?.aborted }, [apiKey]));
      const outgoing = httpRequest(
        {
          ...this.endpoint,
          method: 'POST',
          agent,
          ...(request.signal === undefined ? {} : { signal: request.signal }),
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            ...(apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` }),
            ...(request.callId === undefined ? {} : { 'idempotency-key': request.callId }),
          },
        },
        (response) => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve(response);
            return;
          }
          readBody(response).then((text) => {
            const headers = { get: (name: string) => headerValue(response, name) };
            reject(providerError(this.name, { status, headers, message: `${status} ${errorMessage(text)}` }, [apiKey]));
          }, fail);
        },
      );
      // A socket timeout (no byte for timeoutMs) rather than an AbortSignal.timeout: it rides on
      // the socket's own timer, which matters at thousands of calls per second.
      outgoing.setTimeout(timeoutMs, () => {
        timedOut = true;
        outgoing.destroy(new Error(`no answer for ${timeoutMs} ms`));
      });
      outgoing.on('error', fail);
      outgoing.end(body);
    });
  }
}

/** Refuses a latency, speed or seed no simulation can use, naming the key. */
export function checkSimulatedModel(owner: string, model: SimulatedModelOptions): void {
  const refuse = (key: string, rule: string, value: unknown) =>
    new RuntimeError(RuntimeErrorCode.InvalidOptions, `${owner} option ${key} ${rule}, got ${String(value)}`);
  if (!(Number.isFinite(model.latencyMs) && model.latencyMs >= 0)) throw refuse('latencyMs', 'must be a number ≥ 0', model.latencyMs);
  if (!(model.tokensPerSecond > 0))
    throw refuse('tokensPerSecond', 'must be a number > 0 (Infinity for instant answers)', model.tokensPerSecond);
  if (!Number.isInteger(model.seed)) throw refuse('seed', 'must be an integer', model.seed);
}

interface OpenAiWireResponse {
  model: string;
  choices: { message: { content: string | null }; finish_reason: string | null }[];
  usage: { prompt_tokens: number; completion_tokens: number };
}

interface OpenAiWireChunk {
  model: string;
  choices: { delta: { content?: string }; finish_reason: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
}

/** Events rather than async iteration: the iterator's promise per chunk shows at load. */
function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => (text += chunk));
    response.on('end', () => resolve(text));
    response.on('error', reject);
  });
}

function headerValue(response: IncomingMessage, name: string): string | null {
  const value = response.headers[name];
  return Array.isArray(value) ? (value[0] ?? null) : (value ?? null);
}

function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } };
    if (typeof parsed.error?.message === 'string') return parsed.error.message;
  } catch {
    // Not JSON: the body itself is the best description there is.
  }
  return body.slice(0, 500);
}

function proseAnswer(tokens: number, random: () => number): string[] {
  const pieces: string[] = [];
  let sentence = 0;
  while (pieces.length < tokens) {
    const word = WORDS[Math.floor(random() * WORDS.length)] ?? 'the';
    if (sentence === 0) pieces.push(`${pieces.length === 0 ? '' : ' '}${word[0]?.toUpperCase()}${word.slice(1)}`);
    else pieces.push(` ${word}`);
    sentence += 1;
    if (sentence >= 6 && random() < 0.2) {
      pieces.push('.');
      sentence = 0;
    }
  }
  return pieces;
}

/** `keys` is the prompt's list, e.g. `title (string), points (string[]), risk (number)`. */
function jsonAnswer(keys: string | undefined, random: () => number): string {
  const fields = (keys ?? 'answer (string)').split(',').map((field) => {
    const [, name = field.trim(), type = 'string'] = /^\s*([\w-]+)\s*(?:\(([^)]+)\))?\s*$/.exec(field) ?? [];
    return [name, type.trim()] as const;
  });
  const sentence = () =>
    proseAnswer(4 + Math.floor(random() * 8), random)
      .join('')
      .trim();
  const value = (type: string): unknown => {
    if (type === 'number') return Math.round(random() * 1000) / 10;
    if (type === 'boolean') return random() < 0.5;
    if (type === 'string[]') return Array.from({ length: 1 + Math.floor(random() * 4) }, sentence);
    return sentence();
  };
  return JSON.stringify(Object.fromEntries(fields.map(([name, type]) => [name, value(type)])));
}

/** FNV-1a over UTF-16 code units: a fast, stable 32-bit seed from a string. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** A small seeded PRNG: the same seed gives the same sequence on every machine. */
function mulberry32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
