/**
 * The `/api/stream` WebSocket endpoint: token check on upgrade, subscribe/unsubscribe messages,
 * and the per-connection limits that keep memory bounded — at most `maxBackpressureBytes`
 * buffered per socket (a client that falls further behind is disconnected by uWS and resumes
 * after reconnecting), `maxSubscriptions` topics, `maxMessageBytes` per client message,
 * `maxMessagesPerSecond` from each client and `maxConnections` sockets. Worst case, what the
 * stream holds is about maxConnections × maxBackpressureBytes plus the topics' replay buffers
 * (TopicHub).
 */
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { EmbeddedRateLimiter } from '../services/embedded/rate-limiter.js';
import { authorizeTopic, identityOf, parseTopic } from './access.js';
import { errorMessage, errorReply } from './errors.js';
import type { ClientMessage, Identity, ServerMessage, StreamCloseCodes, StreamSubprotocol, TopicKey, WelcomeMessage } from './protocol.js';
import type { Tokens } from './tokens.js';
import type { ResumePoint, TopicHub } from './topic-hub.js';
import { uws, type TemplatedApp, type WebSocket } from './uws.js';

export interface StreamLimits {
  /** Sockets open at once; more upgrades are refused with 429. */
  maxConnections: number;
  /** Topics one socket may follow. */
  maxSubscriptions: number;
  /**
   * Largest client message: a larger one is refused with TOO_LARGE, and one more than twice as
   * large closes the socket before it is read to its end.
   */
  maxMessageBytes: number;
  /**
   * Messages a client may send a second. A burst of as many at once is allowed (a reconnecting
   * client subscribes again to all its topics); beyond, messages are refused with
   * RESOURCE_EXHAUSTED until the allowance refills.
   */
  maxMessagesPerSecond: number;
  /** Bytes buffered for one socket before it is disconnected as too slow. */
  maxBackpressureBytes: number;
  /** Seconds without traffic before the server pings (and closes a socket that does not answer). */
  idleTimeoutSeconds: number;
}

export const STREAM_LIMITS_DEFAULTS = {
  maxConnections: 10_000,
  maxSubscriptions: 64,
  maxMessageBytes: 4 * 1024,
  // Above maxSubscriptions, so that resubscribing to every topic at once is never refused.
  maxMessagesPerSecond: 100,
  maxBackpressureBytes: 1024 * 1024,
  idleTimeoutSeconds: 60,
} as const satisfies StreamLimits;

const SUBPROTOCOL: StreamSubprotocol = 'troupe.v1';
const BEARER = 'bearer.';
const CLOSE: StreamCloseCodes = { tokenExpired: 4401, protocolError: 4400 };
/** setTimeout's ceiling; a token living longer than this simply is not timed out early. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Messages up to this many times maxMessageBytes are read and refused; uWS cuts larger ones off. */
const READ_LIMIT_FACTOR = 2;

interface Connection {
  /** Its message allowance's key. */
  id: number;
  identity: Identity;
  topics: Set<TopicKey>;
  closed: boolean;
  expiry: NodeJS.Timeout | undefined;
  /** Bytes uWS held for the socket when it last left a topic. */
  bufferedAtLeave: number;
}

/** The mounted endpoint: how many sockets are open, and a way to close them all. */
export interface Stream {
  connections(): number;
  closeAll(): void;
}

/** Mounts the stream on `app` at `path`. */
export function mountStream(
  app: TemplatedApp,
  options: {
    path: string;
    hub: TopicHub;
    tokens: Tokens;
    limits: StreamLimits;
    now: () => number;
    onError: (error: Error) => void;
    /** Told when a socket is dropped for going over `maxBackpressureBytes`. */
    onClientDropped: () => void;
  },
): Stream {
  const { hub, tokens, limits } = options;
  const sockets = new Set<WebSocket<Connection>>();
  const allowance = new EmbeddedRateLimiter(options.now);
  const perConnection = { capacity: limits.maxMessagesPerSecond, refillPerSecond: limits.maxMessagesPerSecond };
  let connections = 0;

  // Over the backpressure limit uWS drops the message and shuts the socket (closeOnBackpressureLimit):
  // the client never sees a gap, it reconnects and resumes. The close handler cleans up.
  const send = (ws: WebSocket<Connection>, message: ServerMessage | string): void => {
    if (!ws.getUserData().closed) ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  };

  const leave = (ws: WebSocket<Connection>, key: TopicKey): void => {
    const connection = ws.getUserData();
    if (!connection.topics.delete(key)) return;
    hub.leave(key);
    if (!connection.closed) ws.unsubscribe(key);
  };

  const subscribe = (ws: WebSocket<Connection>, message: { topic?: unknown; resume?: unknown }): void => {
    const connection = ws.getUserData();
    const topic = authorizeTopic(connection.identity, message.topic);
    // Subscribing again to a followed topic restarts it: that is how a client that saw a gap asks for a snapshot.
    leave(ws, topic.key);
    if (connection.topics.size >= limits.maxSubscriptions) {
      throw new RuntimeError(RuntimeErrorCode.ResourceExhausted, `a connection may follow at most ${limits.maxSubscriptions} topics`);
    }
    const joined = hub.join(topic, resumePoint(message.resume));
    connection.topics.add(topic.key);
    ws.subscribe(topic.key);
    ws.cork(() => {
      for (const text of joined.messages) send(ws, text);
    });
  };

  app.ws<Connection>(options.path, {
    compression: uws().DISABLED,
    maxPayloadLength: limits.maxMessageBytes * READ_LIMIT_FACTOR,
    maxBackpressure: limits.maxBackpressureBytes,
    closeOnBackpressureLimit: 1,
    idleTimeout: limits.idleTimeoutSeconds,
    sendPingsAutomatically: true,

    upgrade(res, req, context) {
      const key = req.getHeader('sec-websocket-key');
      const extensions = req.getHeader('sec-websocket-extensions');
      const offered = req
        .getHeader('sec-websocket-protocol')
        .split(',')
        .map((protocol) => protocol.trim())
        .filter((protocol) => protocol !== '');
      try {
        if (sockets.size >= limits.maxConnections) {
          throw new RuntimeError(
            RuntimeErrorCode.ResourceExhausted,
            `the gateway holds its limit of ${limits.maxConnections} streams; retry later`,
            { retriable: true },
          );
        }
        const identity = identityOf(tokens.verify(bearerToken(req.getHeader('authorization'), offered)));
        connections += 1;
        const connection: Connection = {
          id: connections,
          identity,
          topics: new Set(),
          closed: false,
          expiry: undefined,
          bufferedAtLeave: 0,
        };
        res.upgrade(connection, key, offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : '', extensions, context);
      } catch (error) {
        const reply = errorReply(error);
        res.cork(() => {
          res.writeStatus(reply.status).writeHeader('Content-Type', 'application/json; charset=utf-8').end(JSON.stringify(reply.body));
        });
      }
    },

    open(ws) {
      sockets.add(ws);
      const connection = ws.getUserData();
      const ttl = connection.identity.expiresAt - options.now();
      if (ttl < MAX_TIMER_MS) {
        connection.expiry = setTimeout(() => {
          if (!connection.closed) ws.end(CLOSE.tokenExpired, 'token expired');
        }, ttl).unref();
      }
      const welcome: WelcomeMessage = {
        type: 'welcome',
        identity: connection.identity,
        limits: { maxSubscriptions: limits.maxSubscriptions, maxMessageBytes: limits.maxMessageBytes },
      };
      send(ws, welcome);
    },

    message(ws, data, isBinary) {
      const connection = ws.getUserData();
      // uWS owns `data` only until this returns: it is read here, and acted on once the allowance answers.
      let message: (Partial<ClientMessage> & { topic?: unknown; resume?: unknown }) | RuntimeError;
      if (data.byteLength > limits.maxMessageBytes) {
        message = new RuntimeError(
          RuntimeErrorCode.TooLarge,
          `a message may be at most ${limits.maxMessageBytes} bytes, got ${data.byteLength}`,
        );
      } else {
        try {
          if (isBinary) throw new Error('binary');
          message = JSON.parse(Buffer.from(data).toString('utf8')) as typeof message;
          if (typeof message !== 'object' || message === null) throw new Error('not an object');
        } catch {
          ws.end(CLOSE.protocolError, 'messages must be JSON objects in text frames');
          return;
        }
      }
      void allowance.take(String(connection.id), 1, perConnection).then(
        ({ granted, retryAfterMs }) => {
          if (connection.closed) return;
          const topic = message instanceof RuntimeError || typeof message.topic !== 'string' ? undefined : message.topic;
          try {
            if (!granted) {
              throw new RuntimeError(
                RuntimeErrorCode.ResourceExhausted,
                `a connection may send at most ${limits.maxMessagesPerSecond} messages a second; retry in ${retryAfterMs} ms`,
                { retriable: true },
              );
            }
            if (message instanceof RuntimeError) throw message;
            switch (message.type) {
              case 'subscribe':
                subscribe(ws, message);
                break;
              case 'unsubscribe': {
                const parsed = parseTopic(message.topic);
                leave(ws, parsed.key);
                send(ws, { type: 'unsubscribed', topic: parsed.key });
                break;
              }
              default:
                throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'type must be subscribe or unsubscribe');
            }
          } catch (error) {
            const reply = errorMessage(error, topic);
            if (reply.code === 'INTERNAL') options.onError(toError(error));
            send(ws, reply);
          }
        },
        (error: unknown) => options.onError(toError(error)),
      );
    },

    // uWS 20.30 has no `dropped` handler, and a socket can no longer be read in `close`; but uWS
    // takes a closing socket out of its topics just before, so what it held then tells a socket
    // shut for going over the backpressure limit from one whose client went away.
    subscription(ws, _topic, newCount, oldCount) {
      if (newCount >= oldCount) return;
      try {
        ws.getUserData().bufferedAtLeave = ws.getBufferedAmount();
      } catch {
        // A socket this server ended itself (closeAll, an expired token, a protocol error) can no
        // longer be read: it was not dropped for falling behind.
      }
    },

    close(ws, code) {
      const connection = ws.getUserData();
      // 1006: the connection ended without a close handshake, as uWS ends the sockets it drops.
      if (code === 1006 && connection.bufferedAtLeave > limits.maxBackpressureBytes) options.onClientDropped();
      connection.closed = true;
      clearTimeout(connection.expiry);
      for (const key of connection.topics) hub.leave(key);
      connection.topics.clear();
      sockets.delete(ws);
    },
  });

  return {
    connections: () => sockets.size,
    closeAll() {
      for (const ws of sockets) ws.end(1001, 'server shutting down');
    },
  };
}

/** The token from `Authorization: Bearer …`, else from the `bearer.<token>` subprotocol a browser offers. */
function bearerToken(authorization: string, offered: string[]): string {
  if (/^bearer /i.test(authorization)) return authorization.slice(7).trim();
  const protocol = offered.find((candidate) => candidate.startsWith(BEARER));
  if (protocol !== undefined) {
    if (!offered.includes(SUBPROTOCOL)) {
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `offer the subprotocol ${SUBPROTOCOL} beside ${BEARER}<token>`);
    }
    return protocol.slice(BEARER.length);
  }
  throw new RuntimeError(
    RuntimeErrorCode.Unauthenticated,
    `send the token as Authorization: Bearer <token>, or as the subprotocol ${BEARER}<token> beside ${SUBPROTOCOL}`,
  );
}

function resumePoint(value: unknown): ResumePoint | undefined {
  if (value === undefined || value === null) return undefined;
  const { epoch, seq } = (typeof value === 'object' ? value : {}) as Partial<ResumePoint>;
  if (typeof epoch !== 'string' || epoch.length > 64 || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'resume must be {epoch: string, seq: non-negative integer}');
  }
  return { epoch, seq };
}
