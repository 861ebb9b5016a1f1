/**
 * The simulated provider as a loopback HTTP server speaking three wire formats over real
 * sockets — OpenAI chat completions (JSON or SSE), Anthropic messages (JSON or SSE) and Ollama
 * /api/chat (JSON or NDJSON) — so the official SDKs, load tests and crash tests talk to it as
 * to the real thing. It counts what it is asked and what it sells — per call too, when clients
 * send an `Idempotency-Key` (the simulated provider sends its call id) — and can be told to fail
 * the next calls (429 with Retry-After, 5xx, a stall, malformed output).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { withDefaults } from './options.js';
import {
  checkSimulatedModel,
  simulateAnswer,
  simulatedChunks,
  simulatedDurationMs,
  SIMULATED_MODEL_DEFAULTS,
  type SimulatedAnswer,
  type SimulatedModelOptions,
} from './providers/simulated.js';
import type { ChatMessage } from './tokens.js';

export type WireFormat = 'openai' | 'anthropic' | 'ollama';

export interface SimulatedServerOptions extends SimulatedModelOptions {
  /** Loopback by default: the server is for tests and load tests. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** When set, requests must carry it (as a bearer token or `x-api-key`); others get 401. */
  apiKey?: string;
}

export const SIMULATED_SERVER_DEFAULTS = {
  ...SIMULATED_MODEL_DEFAULTS,
  host: '127.0.0.1',
  port: 0,
} as const satisfies Partial<SimulatedServerOptions>;

/** A failure to answer the next calls with. */
export type SimulatedFault =
  | { type: 'status'; status: number; retryAfterSeconds?: number; message?: string }
  /** Accept the request and never answer: the client's timeout is what ends it. */
  | { type: 'stall' }
  /** Answer normally but without the structure asked for (prose instead of JSON). */
  | { type: 'malformed' };

/** What the server has seen, for tests to assert on. */
export interface SimulatedServerStats {
  /** Requests on the three chat routes, failed ones included. */
  requests: number;
  /** Completions sold: requests answered with a model's output (malformed ones included). */
  completions: number;
  completionsByFormat: Record<WireFormat, number>;
  /** Requests answered with an injected error status. */
  failures: number;
  inFlight: number;
  peakInFlight: number;
  /** Sum of completion tokens sold. */
  outputTokens: number;
  /** Distinct calls among the completions sold, told apart by the `Idempotency-Key` their clients sent. */
  callIds: number;
}

/** What the server sold for one call id (the `Idempotency-Key` a client sent with it). */
export interface AnsweredCall {
  /** Completions sold for it: more than one when a client asked again for the same call. */
  answers: number;
  inputTokens: number;
  outputTokens: number;
  /** When it was first asked for (unix ms). */
  firstSoldAt: number;
}

/**
 * A running simulated server.
 *
 * @example
 * const server = await SimulatedServer.start({ latencyMs: 20, seed: 7 });
 * const openai = new OpenAI({ apiKey: 'sk-sim', baseURL: server.openaiBaseURL });
 * const anthropic = new Anthropic({ apiKey: 'sk-sim', baseURL: server.url });
 * const ollama = new Ollama({ host: server.url });
 * server.failNext(2, { type: 'status', status: 429, retryAfterSeconds: 1 });
 * await server.close();
 */
export class SimulatedServer {
  private readonly faults: SimulatedFault[] = [];
  private readonly counters: SimulatedServerStats = {
    requests: 0,
    completions: 0,
    completionsByFormat: { openai: 0, anthropic: 0, ollama: 0 },
    failures: 0,
    inFlight: 0,
    peakInFlight: 0,
    outputTokens: 0,
    callIds: 0,
  };
  private readonly answered = new Map<string, AnsweredCall>();
  private readonly server: Server;

  private constructor(private readonly options: SimulatedServerOptions) {
    this.server = createServer((request, response) => this.handle(request, response));
    // Clients keep hundreds of sockets alive between calls; the defaults would close them under a load test.
    this.server.keepAliveTimeout = 120_000;
    this.server.requestTimeout = 0;
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(options: Partial<SimulatedServerOptions> = {}): Promise<SimulatedServer> {
    const resolved = withDefaults(SIMULATED_SERVER_DEFAULTS, options);
    checkSimulatedModel('SimulatedServer', resolved);
    if (!Number.isInteger(resolved.port) || resolved.port < 0 || resolved.port > 65_535) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `SimulatedServer option port must be an integer in 0..65535, got ${resolved.port}`,
      );
    }
    const server = new SimulatedServer(resolved);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(resolved.port, resolved.host, () => resolve());
    });
    return server;
  }

  /** `http://host:port`: the Anthropic SDK's and Ollama's base. */
  get url(): string {
    const { address, port } = this.server.address() as AddressInfo;
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  /** `http://host:port/v1`: the OpenAI SDK's base. */
  get openaiBaseURL(): string {
    return `${this.url}/v1`;
  }

  /** A copy of the counters. */
  stats(): SimulatedServerStats {
    return { ...this.counters, completionsByFormat: { ...this.counters.completionsByFormat } };
  }

  /** What was sold per call id, by `Idempotency-Key`; requests without one are not in it. */
  answeredCalls(): Map<string, AnsweredCall> {
    return new Map([...this.answered].map(([callId, call]) => [callId, { ...call }]));
  }

  /** Answers the next `count` chat requests (of any format) with `fault`, after any queued before. */
  failNext(count: number, fault: SimulatedFault): void {
    for (let i = 0; i < count; i += 1) this.faults.push(fault);
  }

  /** Stops listening and drops open connections (stalled calls included). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const format = routeFormat(request);
    if (format === undefined) {
      response
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { message: `no route ${request.method} ${request.url}` } }));
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      this.counters.requests += 1;
      this.counters.inFlight += 1;
      this.counters.peakInFlight = Math.max(this.counters.peakInFlight, this.counters.inFlight);
      response.once('close', () => (this.counters.inFlight -= 1));
      let body: WireRequest;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WireRequest;
      } catch {
        sendError(response, format, 400, 'the body is not JSON');
        return;
      }
      const presented = presentedKey(request);
      if (this.options.apiKey !== undefined && presented !== this.options.apiKey) {
        // Echoes the key as some providers and proxies do, so tests can check that errors are redacted.
        sendError(response, format, 401, `Incorrect API key provided: ${presented ?? '(none)'}`);
        return;
      }
      const fault = this.faults.shift();
      if (fault?.type === 'stall') return;
      if (fault?.type === 'status') {
        this.counters.failures += 1;
        sendError(response, format, fault.status, fault.message ?? `simulated ${fault.status}`, fault.retryAfterSeconds);
        return;
      }
      const parsed = parseWireRequest(format, body);
      const answer = simulateAnswer(parsed, this.options.seed, { malformed: fault?.type === 'malformed' });
      this.counters.completions += 1;
      this.counters.completionsByFormat[format] += 1;
      this.counters.outputTokens += answer.usage.outputTokens;
      const callId = request.headers['idempotency-key'];
      if (typeof callId === 'string' && callId !== '') {
        // Sold when asked: a client that dies before the answer arrives has paid for it all the same.
        const before = this.answered.get(callId);
        this.answered.set(callId, { answers: (before?.answers ?? 0) + 1, ...answer.usage, firstSoldAt: before?.firstSoldAt ?? Date.now() });
        this.counters.callIds = this.answered.size;
      }
      if (parsed.stream) streamAnswer(response, format, parsed, answer, this.options);
      else setTimeout(() => sendAnswer(response, format, parsed.model, answer), simulatedDurationMs(this.options, answer.pieces.length));
    });
  }
}

interface WireRequest {
  model?: unknown;
  messages?: unknown;
  system?: unknown;
  stream?: unknown;
  max_tokens?: unknown;
  max_completion_tokens?: unknown;
  stream_options?: { include_usage?: unknown };
  response_format?: { type?: unknown };
  format?: unknown;
  options?: { num_predict?: unknown };
}

interface ParsedRequest {
  model: string;
  messages: ChatMessage[];
  maxOutputTokens: number;
  stream: boolean;
  includeUsage: boolean;
  responseFormat: 'text' | 'json';
}

function routeFormat(request: IncomingMessage): WireFormat | undefined {
  if (request.method !== 'POST') return undefined;
  const path = (request.url ?? '').split('?')[0];
  if (path === '/v1/chat/completions') return 'openai';
  if (path === '/v1/messages') return 'anthropic';
  if (path === '/api/chat') return 'ollama';
  return undefined;
}

/** Anthropic's API takes `x-api-key`; its SDK also sends keys as a bearer token, as the others do. */
function presentedKey(request: IncomingMessage): string | undefined {
  const key = request.headers['x-api-key'];
  if (typeof key === 'string') return key;
  const authorization = request.headers.authorization;
  return authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : undefined;
}

/** Normalises the three request shapes, with each API's own defaults. */
function parseWireRequest(format: WireFormat, body: WireRequest): ParsedRequest {
  const messages: ChatMessage[] = [];
  if (format === 'anthropic' && body.system !== undefined) messages.push({ role: 'system', content: textOf(body.system) });
  for (const message of Array.isArray(body.messages) ? (body.messages as { role?: unknown; content?: unknown }[]) : []) {
    const role = message.role === 'system' || message.role === 'assistant' ? message.role : 'user';
    messages.push({ role, content: textOf(message.content) });
  }
  const limit = format === 'ollama' ? body.options?.num_predict : (body.max_completion_tokens ?? body.max_tokens);
  return {
    model: typeof body.model === 'string' ? body.model : 'simulated',
    messages,
    maxOutputTokens: typeof limit === 'number' && limit > 0 ? limit : 1024,
    // Ollama streams unless told not to; the others only when asked.
    stream: format === 'ollama' ? body.stream !== false : body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    responseFormat: body.response_format?.type === 'json_object' || body.format === 'json' ? 'json' : 'text',
  };
}

/** Message content as a string, or as Anthropic/OpenAI content blocks. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((block: { type?: unknown; text?: unknown }) => (block.type === 'text' && typeof block.text === 'string' ? block.text : ''))
    .join('');
}

function sendError(response: ServerResponse, format: WireFormat, status: number, message: string, retryAfterSeconds?: number): void {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (retryAfterSeconds !== undefined) headers['retry-after'] = String(retryAfterSeconds);
  const body =
    format === 'openai'
      ? { error: { message, type: status === 429 ? 'rate_limit_exceeded' : 'server_error', code: null, param: null } }
      : format === 'anthropic'
        ? {
            type: 'error',
            error: { type: status === 429 ? 'rate_limit_error' : status === 401 ? 'authentication_error' : 'api_error', message },
          }
        : { error: message };
  response.writeHead(status, headers).end(JSON.stringify(body));
}

function stopReason(format: WireFormat, answer: SimulatedAnswer): string {
  if (format === 'anthropic') return answer.finishReason === 'length' ? 'max_tokens' : 'end_turn';
  return answer.finishReason === 'length' ? 'length' : 'stop';
}

function sendAnswer(response: ServerResponse, format: WireFormat, model: string, answer: SimulatedAnswer): void {
  if (response.destroyed) return;
  const { inputTokens, outputTokens } = answer.usage;
  let body: unknown;
  if (format === 'openai') {
    body = {
      id: `chatcmpl-${randomUUID()}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: answer.text, refusal: null },
          finish_reason: stopReason(format, answer),
          logprobs: null,
        },
      ],
      usage: { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens },
    };
  } else if (format === 'anthropic') {
    body = {
      id: `msg_${randomUUID()}`,
      type: 'message',
      role: 'assistant',
      model,
      content: [{ type: 'text', text: answer.text }],
      stop_reason: stopReason(format, answer),
      stop_sequence: null,
      usage: { input_tokens: inputTokens, output_tokens: outputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    };
  } else {
    body = { ...ollamaPart(model, answer.text, false), ...ollamaDone(answer) };
  }
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Writes the answer as the format's stream, paced at the simulated speed. */
function streamAnswer(
  response: ServerResponse,
  format: WireFormat,
  request: ParsedRequest,
  answer: SimulatedAnswer,
  model: SimulatedModelOptions,
): void {
  const id = randomUUID();
  const created = Math.floor(Date.now() / 1000);
  const sse = (event: string | undefined, data: unknown) => {
    if (!response.destroyed)
      response.write(
        `${event === undefined ? '' : `event: ${event}\n`}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`,
      );
  };
  const openaiChunk = (delta: object, finish: string | null) => ({
    id: `chatcmpl-${id}`,
    object: 'chat.completion.chunk',
    created,
    model: request.model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  });
  const { inputTokens, outputTokens } = answer.usage;
  const start = () => {
    if (format === 'ollama') {
      response.writeHead(200, { 'content-type': 'application/x-ndjson' });
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (format === 'openai') {
      sse(undefined, openaiChunk({ role: 'assistant', content: '' }, null));
    } else {
      sse('message_start', {
        type: 'message_start',
        message: {
          id: `msg_${id}`,
          type: 'message',
          role: 'assistant',
          model: request.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: inputTokens, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
        },
      });
      sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    }
  };
  const piece = (text: string) => {
    if (format === 'openai') sse(undefined, openaiChunk({ content: text }, null));
    else if (format === 'anthropic')
      sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } });
    else if (!response.destroyed) response.write(`${JSON.stringify(ollamaPart(request.model, text, false))}\n`);
  };
  const finish = () => {
    if (format === 'openai') {
      sse(undefined, openaiChunk({}, stopReason(format, answer)));
      if (request.includeUsage) {
        sse(undefined, {
          id: `chatcmpl-${id}`,
          object: 'chat.completion.chunk',
          created,
          model: request.model,
          choices: [],
          usage: { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens },
        });
      }
      sse(undefined, '[DONE]');
    } else if (format === 'anthropic') {
      sse('content_block_stop', { type: 'content_block_stop', index: 0 });
      sse('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: stopReason(format, answer), stop_sequence: null },
        usage: { output_tokens: outputTokens },
      });
      sse('message_stop', { type: 'message_stop' });
    } else if (!response.destroyed) {
      response.write(`${JSON.stringify({ ...ollamaPart(request.model, '', true), ...ollamaDone(answer) })}\n`);
    }
    response.end();
  };
  const chunks = simulatedChunks(model, answer.pieces);
  let next = 0;
  const step = () => {
    if (response.destroyed) return;
    if (next === 0) start();
    const chunk = chunks[next];
    next += 1;
    if (chunk !== undefined && chunk.text !== '') piece(chunk.text);
    if (next >= chunks.length) finish();
    else setTimeout(step, chunks[next]?.delayMs ?? 0);
  };
  setTimeout(step, chunks[0]?.delayMs ?? 0);
}

function ollamaPart(model: string, content: string, done: boolean) {
  return { model, created_at: new Date().toISOString(), message: { role: 'assistant', content }, done };
}

function ollamaDone(answer: SimulatedAnswer) {
  return {
    done: true,
    done_reason: answer.finishReason === 'length' ? 'length' : 'stop',
    total_duration: 0,
    load_duration: 0,
    prompt_eval_count: answer.usage.inputTokens,
    prompt_eval_duration: 0,
    eval_count: answer.usage.outputTokens,
    eval_duration: 0,
  };
}
