/**
 * The gateway: one uWebSockets.js server per replica that serves the dashboard's static build,
 * the HTTP API under `/api` and the live stream at `/api/stream`, all from a RuntimeApi. It
 * never imports the domain: whatever implements RuntimeApi (the embedded runtime, a gRPC
 * client of a remote one) is what it shows.
 */
import type { RuntimeApi } from '../api/runtime-api.js';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { withDefaults } from '../llm/options.js';
import { logError } from '../security/redact.js';
import { mountApi } from './http-api.js';
import { LiveState } from './live-state.js';
import { StaticFiles } from './static-files.js';
import { mountStream, STREAM_LIMITS_DEFAULTS, type Stream, type StreamLimits } from './stream.js';
import type { Tokens } from './tokens.js';
import { TopicHub, type TopicTuning } from './topic-hub.js';
import { listen, uws, type HttpRequest, type HttpResponse, type Listening, type TemplatedApp } from './uws.js';

export interface GatewayOptions {
  api: RuntimeApi;
  /**
   * Sets a pool's replicas for the dashboard's Scale (default: the runtime's ScalePool). Where an
   * operator keeps each pool as its AgentPool resource says, this must go through the resource,
   * or the operator scales the pool back.
   */
  scalePool?: RuntimeApi['scalePool'];
  /** Verifies bearer tokens; every replica shares its secret. */
  tokens: Tokens;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** The dashboard's static build (`dashboard/build`); undefined serves the API alone. */
  staticDir?: string | undefined;
  /** Largest accepted HTTP request body. */
  maxBodyBytes?: number;
  /** Per-connection and per-server limits of the stream. */
  stream?: Partial<StreamLimits>;
  /** Replay buffers and batching of the stream's topics. */
  topics?: TopicTuning;
  /** Activity items and cost points kept per project. */
  activityLimit?: number;
  costPoints?: number;
  /** How often pool gauges are sampled from the runtime; 0 relies on PoolStatus events alone. */
  poolSampleMs?: number;
  /** Unix ms. */
  now?: () => number;
  onError?: (error: Error) => void;
  /** Told when a stream client is dropped for falling too far behind (see StreamLimits.maxBackpressureBytes). */
  onClientDropped?: () => void;
}

export const GATEWAY_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  staticDir: undefined,
  maxBodyBytes: 16 * 1024,
  activityLimit: 200,
  costPoints: 240,
  poolSampleMs: 1_000,
  now: Date.now,
  onError: logError('troupe gateway'),
  onClientDropped: () => {},
} as const satisfies Omit<GatewayOptions, 'api' | 'tokens' | 'stream' | 'topics'>;

/**
 * A running gateway.
 *
 * @example
 * const gateway = await Gateway.start({ api: runtime.api, tokens: new Tokens({ secret }), staticDir: 'dashboard/build' });
 * console.log(`dashboard at ${gateway.url}`);
 * await gateway.stop();
 */
export class Gateway {
  private constructor(
    /** Where it listens, e.g. `http://127.0.0.1:8080`. */
    readonly url: string,
    readonly port: number,
    private readonly listening: Listening,
    private readonly stream: Stream,
    private readonly hub: TopicHub,
    private readonly live: LiveState,
  ) {}

  static async start(options: GatewayOptions): Promise<Gateway> {
    const settings = withDefaults(GATEWAY_DEFAULTS, options);
    const limits = withDefaults(STREAM_LIMITS_DEFAULTS, options.stream ?? {});
    validate(settings, limits);
    const staticFiles = settings.staticDir === undefined ? undefined : await StaticFiles.load(settings.staticDir);

    const app = uws().App();
    const hub = new TopicHub({
      publish: (topic, message) => app.publish(topic, message),
      snapshot: (topic) => live.snapshot(topic),
      ...options.topics,
    });
    const live = await LiveState.start({
      api: settings.api,
      hub,
      activityLimit: settings.activityLimit,
      costPoints: settings.costPoints,
      poolSampleMs: settings.poolSampleMs,
      now: settings.now,
      onError: settings.onError,
    });
    const stream = mountStream(app, {
      path: '/api/stream',
      hub,
      tokens: settings.tokens,
      limits,
      now: settings.now,
      onError: settings.onError,
      onClientDropped: settings.onClientDropped,
    });
    mountApi(app, {
      api: settings.api,
      scalePool: settings.scalePool ?? ((commandId, command) => settings.api.scalePool(commandId, command)),
      live,
      tokens: settings.tokens,
      maxBodyBytes: settings.maxBodyBytes,
      now: settings.now,
      onError: settings.onError,
    });
    mountStatic(app, staticFiles);

    let listening: Listening;
    try {
      listening = await listen(app, settings.host, settings.port);
    } catch (error) {
      hub.close();
      await live.stop();
      throw error;
    }
    return new Gateway(`http://${settings.host}:${listening.port}`, listening.port, listening, stream, hub, live);
  }

  /** Open streams, live topics, their subscribers, and bytes held for resuming clients. */
  stats(): { connections: number; topics: number; subscribers: number; replayBytes: number } {
    return { connections: this.stream.connections(), ...this.hub.stats() };
  }

  /** Stops listening, closes every stream and stops watching the runtime. */
  async stop(): Promise<void> {
    this.listening.close();
    this.stream.closeAll();
    this.hub.close();
    await this.live.stop();
  }
}

function mountStatic(app: TemplatedApp, files: StaticFiles | undefined): void {
  const handle = (res: HttpResponse, req: HttpRequest, head: boolean) => {
    const hit = files?.lookup(req.getUrl(), req.getHeader('accept-encoding'));
    if (hit === undefined) {
      res
        .writeStatus('404 Not Found')
        .writeHeader('Content-Type', 'text/plain; charset=utf-8')
        .end(head ? undefined : 'not found');
      return;
    }
    const { file } = hit;
    const notModified = req.getHeader('if-none-match') === file.etag;
    res.writeStatus(notModified ? '304 Not Modified' : '200 OK');
    res.writeHeader('Content-Type', file.contentType);
    res.writeHeader('Cache-Control', file.cacheControl);
    res.writeHeader('ETag', file.etag);
    res.writeHeader('Vary', 'Accept-Encoding');
    res.writeHeader('X-Content-Type-Options', 'nosniff');
    res.writeHeader('Referrer-Policy', 'no-referrer');
    for (const [name, value] of file.headers) res.writeHeader(name, value);
    if (hit.encoding !== undefined) res.writeHeader('Content-Encoding', hit.encoding);
    if (notModified || head) res.endWithoutBody(notModified ? 0 : hit.body.length);
    else res.end(hit.body);
  };
  app.get('/*', (res, req) => handle(res, req, false));
  app.head('/*', (res, req) => handle(res, req, true));
}

function validate(settings: typeof GATEWAY_DEFAULTS & GatewayOptions, limits: StreamLimits): void {
  const check = (key: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min) {
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `Gateway option ${key} must be an integer ≥ ${min}, got ${value}`);
    }
  };
  check('port', settings.port, 0);
  if (settings.port > 65_535)
    throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `Gateway option port must be at most 65535, got ${settings.port}`);
  check('maxBodyBytes', settings.maxBodyBytes, 1);
  check('activityLimit', settings.activityLimit, 1);
  check('costPoints', settings.costPoints, 2);
  check('poolSampleMs', settings.poolSampleMs, 0);
  for (const [key, value] of Object.entries(limits)) check(`stream.${key}`, value, key === 'idleTimeoutSeconds' ? 0 : 1);
  if (settings.api === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidOptions, 'Gateway option api is required');
  if (settings.tokens === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidOptions, 'Gateway option tokens is required');
}
