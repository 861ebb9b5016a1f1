/**
 * Test support: a stream client over `ws` that records every message and waits for the ones a
 * test expects, with a deadline instead of sleeps. Tests only.
 */
import WebSocket from 'ws';
import type { ClientMessage, ServerMessage } from '../protocol.js';

export class StreamClient {
  readonly messages: ServerMessage[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      for (const line of String(data).split('\n')) this.messages.push(JSON.parse(line) as ServerMessage);
      this.wake();
    });
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this.wake();
    });
  }

  /** Connects with the token as a browser would (subprotocols) or as a service (Authorization header). */
  static connect(url: string, token: string, how: 'subprotocol' | 'header' = 'header'): Promise<StreamClient> {
    const socket =
      how === 'header'
        ? new WebSocket(url, { headers: { authorization: `Bearer ${token}` } })
        : new WebSocket(url, ['troupe.v1', `bearer.${token}`]);
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new StreamClient(socket)));
      socket.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () =>
          reject(Object.assign(new Error(`upgrade refused: ${response.statusCode} ${body}`), { status: response.statusCode, body })),
        );
      });
      socket.once('error', reject);
    });
  }

  send(message: ClientMessage | Record<string, unknown>): void {
    this.socket.send(JSON.stringify(message));
  }

  /** The first recorded message after index `from` matching `predicate`, waiting up to `timeoutMs`. */
  async next<T extends ServerMessage>(predicate: (message: ServerMessage) => message is T, from?: number, timeoutMs?: number): Promise<T>;
  async next(predicate: (message: ServerMessage) => boolean, from?: number, timeoutMs?: number): Promise<ServerMessage>;
  async next(predicate: (message: ServerMessage) => boolean, from = 0, timeoutMs = 10_000): Promise<ServerMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.slice(from).find(predicate);
      if (found !== undefined) return found;
      if (this.closed !== undefined)
        throw new Error(`the stream closed (${this.closed.code} ${this.closed.reason}) before the expected message`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no expected message within ${timeoutMs} ms; got ${JSON.stringify(this.messages.slice(from).slice(-5))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves when the server closed the socket. */
  async whenClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (this.closed === undefined) {
      if (Date.now() > deadline) throw new Error(`the stream did not close within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.closed;
  }

  close(): void {
    this.socket.close();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}
