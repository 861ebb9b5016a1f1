/**
 * The stream without the rest of the gateway: a uWS server with only `/api/stream`, whose
 * topics are fed by the caller through `hub.publish`. It is the fan-out tier measured by the
 * ws-fanout benchmark, and what the protocol tests drive without a runtime.
 */
import { withDefaults } from '../llm/options.js';
import { logError } from '../security/redact.js';
import { mountStream, STREAM_LIMITS_DEFAULTS, type Stream, type StreamLimits } from './stream.js';
import type { Tokens } from './tokens.js';
import { TOPIC_HUB_DEFAULTS, TopicHub, type SnapshotSource, type TopicTuning } from './topic-hub.js';
import { listen, uws, type Listening } from './uws.js';

export interface StreamServerOptions {
  tokens: Tokens;
  /** The state of a topic when someone subscribes to it. */
  snapshot: SnapshotSource;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  stream?: Partial<StreamLimits>;
  /** Replay buffers and batching of the topics. */
  topics?: TopicTuning;
  /** Unix ms with a fraction; stamps deltas, and times tokens and message allowances. */
  now?: () => number;
  onError?: (error: Error) => void;
  /** Told when a client is dropped for falling too far behind (see StreamLimits.maxBackpressureBytes). */
  onClientDropped?: () => void;
}

export const STREAM_SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  now: TOPIC_HUB_DEFAULTS.now,
  onError: logError('troupe stream'),
  onClientDropped: () => {},
} as const satisfies Omit<StreamServerOptions, 'tokens' | 'snapshot' | 'stream' | 'topics'>;

/**
 * A running stream server; publish through `hub`.
 *
 * @example
 * const server = await StreamServer.start({ tokens, snapshot: () => ({ pools: [] }) });
 * server.hub.publish('pools', 'pools/acme', { pool, removed: false });
 */
export class StreamServer {
  private constructor(
    /** `ws://host:port/api/stream`. */
    readonly url: string,
    readonly port: number,
    readonly hub: TopicHub,
    private readonly stream: Stream,
    private readonly listening: Listening,
  ) {}

  static async start(options: StreamServerOptions): Promise<StreamServer> {
    const settings = withDefaults(STREAM_SERVER_DEFAULTS, options);
    const limits = withDefaults(STREAM_LIMITS_DEFAULTS, options.stream ?? {});
    const app = uws().App();
    const hub = new TopicHub({
      publish: (topic, message) => app.publish(topic, message),
      snapshot: settings.snapshot,
      ...options.topics,
      now: settings.now,
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
    const listening = await listen(app, settings.host, settings.port);
    return new StreamServer(`ws://${settings.host}:${listening.port}/api/stream`, listening.port, hub, stream, listening);
  }

  /** Open streams. */
  connections(): number {
    return this.stream.connections();
  }

  /** Stops listening and closes every stream. */
  stop(): void {
    this.listening.close();
    this.stream.closeAll();
    this.hub.close();
  }
}
