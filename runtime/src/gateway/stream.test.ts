/**
 * The stream protocol on the stream server alone: snapshots and sequenced deltas, resuming from
 * the replay buffer or from a fresh snapshot, tenancy on subscribe, limits, and slow clients
 * dropped while fast ones miss nothing.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeltaMessage, PoolView, ServerMessage, SnapshotMessage } from './protocol.js';
import { StreamServer, type StreamServerOptions } from './stream-server.js';
import { StreamClient } from './testing/stream-client.js';
import { Tokens } from './tokens.js';

const tokens = new Tokens({ secret: 'stream-test-secret-of-at-least-32-bytes' });
const acme = tokens.sign({ sub: 'alice', tenant: 'acme' });
const admin = tokens.sign({ sub: 'root', role: 'admin' });

const isSnapshot = (message: ServerMessage): message is SnapshotMessage => message.type === 'snapshot';
const isDelta = (message: ServerMessage): message is DeltaMessage => message.type === 'delta';
const deltasOf = (client: StreamClient) => client.messages.filter(isDelta);

function pool(name: string, busy: number): PoolView {
  return { namespace: 'acme', name, role: 'developer', replicas: 2, ready: 2, busy, queueDepth: 0, tokens: 0, costUsd: 0, updatedAt: 0 };
}

describe('the stream protocol', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });

  async function server(options: Partial<StreamServerOptions> = {}): Promise<StreamServer> {
    const started = await StreamServer.start({ tokens, snapshot: () => ({ pools: [pool('developers', 0)] }), ...options });
    cleanups.push(() => started.stop());
    return started;
  }

  async function client(url: string, token = acme, how: 'header' | 'subprotocol' = 'header'): Promise<StreamClient> {
    const connected = await StreamClient.connect(url, token, how);
    cleanups.push(() => connected.close());
    return connected;
  }

  const publish = (stream: StreamServer, busy: number) =>
    stream.hub.publish('pools', 'pools/acme', { pool: pool('developers', busy), removed: false });

  it('sends a snapshot, then each change once with the next sequence number', async () => {
    const stream = await server();
    const alice = await client(stream.url, acme, 'subprotocol');
    expect(alice.socket.protocol).toBe('troupe.v1');
    const welcome = await alice.next((message) => message.type === 'welcome');
    expect(welcome).toMatchObject({
      identity: { sub: 'alice', role: 'client', tenant: 'acme', can: { allNamespaces: false, scale: false } },
    });

    alice.send({ type: 'subscribe', topic: 'pools/acme' });
    const snapshot = await alice.next(isSnapshot);
    expect(snapshot).toMatchObject({ topic: 'pools/acme', kind: 'pools', seq: 0, data: { pools: [pool('developers', 0)] } });
    for (let busy = 1; busy <= 3; busy += 1) publish(stream, busy);
    await alice.next((message) => isDelta(message) && message.seq === 3);
    expect(deltasOf(alice).map((delta) => [delta.seq, (delta.data as { pool: PoolView }).pool.busy])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    // A topic nobody follows costs nothing and sends nothing.
    stream.hub.publish('pools', 'pools/globex', { pool: { ...pool('x', 1), namespace: 'globex' }, removed: false });
    expect(stream.hub.stats()).toMatchObject({ topics: 1, subscribers: 1 });
  });

  it('keeps a tenant to its own namespace and names what is wrong with a request', async () => {
    const stream = await server();
    const alice = await client(stream.url);
    for (const topic of ['pools/globex', 'projects/*', 'project/globex/ledger']) alice.send({ type: 'subscribe', topic });
    alice.send({ type: 'subscribe', topic: 'pools/Not_Valid' });
    alice.send({ type: 'hello' });
    alice.send({ type: 'subscribe', topic: 'pools/acme', resume: { epoch: 7 } });
    await alice.next((message) => message.type === 'error' && message.message.startsWith('resume must be'));
    expect(alice.messages.filter((message) => message.type === 'error')).toEqual([
      { type: 'error', code: 'PERMISSION_DENIED', message: 'a token of tenant acme may not read namespace globex', topic: 'pools/globex' },
      { type: 'error', code: 'PERMISSION_DENIED', message: 'a token of tenant acme may not read every namespace', topic: 'projects/*' },
      {
        type: 'error',
        code: 'PERMISSION_DENIED',
        message: 'a token of tenant acme may not read namespace globex',
        topic: 'project/globex/ledger',
      },
      {
        type: 'error',
        code: 'INVALID_ARGUMENT',
        message:
          'topic "pools/Not_Valid" is not one of projects/<namespace|*>, project/<namespace>/<name>, pools/<namespace|*>, costs/<namespace|*>',
        topic: 'pools/Not_Valid',
      },
      { type: 'error', code: 'INVALID_ARGUMENT', message: 'type must be subscribe or unsubscribe' },
      {
        type: 'error',
        code: 'INVALID_ARGUMENT',
        message: 'resume must be {epoch: string, seq: non-negative integer}',
        topic: 'pools/acme',
      },
    ]);
    const root = await client(stream.url, admin);
    root.send({ type: 'subscribe', topic: 'pools/*' });
    await root.next(isSnapshot);
  });

  it('refuses an upgrade without a valid token, with the reason', async () => {
    const stream = await server();
    await expect(StreamClient.connect(stream.url, 'v1.forged.token')).rejects.toMatchObject({
      status: 401,
      body: '{"error":{"code":"UNAUTHENTICATED","message":"the token signature is invalid"}}',
    });
    await expect(
      StreamClient.connect(stream.url, new Tokens({ secret: 'another-secret-of-at-least-32-bytes!!' }).sign({ sub: 'x', role: 'admin' })),
    ).rejects.toMatchObject({ status: 401 });
    const expired = tokens.sign({ sub: 'alice', tenant: 'acme', exp: Math.floor(Date.now() / 1000) - 1 });
    await expect(StreamClient.connect(stream.url, expired, 'subprotocol')).rejects.toMatchObject({
      status: 401,
      body: '{"error":{"code":"UNAUTHENTICATED","message":"the token has expired"}}',
    });
    const [version, , signature] = acme.split('.');
    const escalated = Buffer.from(JSON.stringify({ sub: 'alice', role: 'admin', exp: 4_000_000_000 })).toString('base64url');
    await expect(StreamClient.connect(stream.url, `${version}.${escalated}.${signature}`)).rejects.toMatchObject({
      status: 401,
      body: '{"error":{"code":"UNAUTHENTICATED","message":"the token signature is invalid"}}',
    });
    const { default: WebSocket } = await import('ws');
    const anonymous = new WebSocket(stream.url);
    const status = await new Promise((resolve) =>
      anonymous.once('unexpected-response', (_request, response) => resolve(response.statusCode)),
    );
    expect(status).toBe(401);
  });

  it('resumes a reconnecting client from the replay buffer, without gaps or repeats', async () => {
    const stream = await server();
    const first = await client(stream.url);
    first.send({ type: 'subscribe', topic: 'pools/acme' });
    const snapshot = await first.next(isSnapshot);
    publish(stream, 1);
    publish(stream, 2);
    const seen = await first.next((message) => isDelta(message) && message.seq === 2);
    first.close();
    await expect.poll(() => stream.connections()).toBe(0);

    publish(stream, 3);
    publish(stream, 4);
    const again = await client(stream.url);
    again.send({ type: 'subscribe', topic: 'pools/acme', resume: { epoch: snapshot.epoch, seq: (seen as DeltaMessage).seq } });
    await again.next((message) => message.type === 'resumed');
    publish(stream, 5);
    await again.next((message) => isDelta(message) && message.seq === 5);
    expect(again.messages.some(isSnapshot)).toBe(false);
    expect(deltasOf(again).map((delta) => delta.seq)).toEqual([3, 4, 5]);
  });

  it('sends a fresh snapshot to a client further behind than the buffer, from another epoch, or after the topic expired', async () => {
    let now = 1_000;
    const stream = await server({ topics: { replayMessages: 4, retainMs: 60_000 }, now: () => now });
    const first = await client(stream.url);
    first.send({ type: 'subscribe', topic: 'pools/acme' });
    const { epoch } = await first.next(isSnapshot);
    for (let busy = 1; busy <= 10; busy += 1) publish(stream, busy);
    await first.next((message) => isDelta(message) && message.seq === 10);

    const behind = await client(stream.url);
    behind.send({ type: 'subscribe', topic: 'pools/acme', resume: { epoch, seq: 2 } });
    expect(await behind.next(isSnapshot)).toMatchObject({ epoch, seq: 10 });
    const withinBuffer = await client(stream.url);
    withinBuffer.send({ type: 'subscribe', topic: 'pools/acme', resume: { epoch, seq: 6 } });
    await withinBuffer.next((message) => isDelta(message) && message.seq === 10);
    expect(deltasOf(withinBuffer).map((delta) => delta.seq)).toEqual([7, 8, 9, 10]);
    const otherEpoch = await client(stream.url);
    otherEpoch.send({ type: 'subscribe', topic: 'pools/acme', resume: { epoch: 'elsewhere.1', seq: 9 } });
    expect(await otherEpoch.next(isSnapshot)).toMatchObject({ epoch, seq: 10 });

    for (const connected of [first, behind, withinBuffer, otherEpoch]) connected.close();
    await expect.poll(() => stream.connections()).toBe(0);
    now += 60_001;
    publish(stream, 11);
    expect(stream.hub.stats()).toMatchObject({ topics: 0, replayBytes: 0 });
    const late = await client(stream.url);
    late.send({ type: 'subscribe', topic: 'pools/acme', resume: { epoch, seq: 10 } });
    const fresh = await late.next(isSnapshot);
    expect(fresh.epoch).not.toBe(epoch);
    expect(fresh.seq).toBe(0);
  });

  it('drops a client that stops reading, while a fast client receives every delta', async () => {
    let dropped = 0;
    const stream = await server({ stream: { maxBackpressureBytes: 64 * 1024 }, onClientDropped: () => (dropped += 1) });
    const fast = await client(stream.url);
    fast.send({ type: 'subscribe', topic: 'pools/acme' });
    await fast.next(isSnapshot);
    const slow = await stalledClient(stream.port, acme, 'pools/acme');
    await expect.poll(() => stream.hub.stats().subscribers).toBe(2);

    // Large deltas, so that the kernel's socket buffers fill and uWS's own buffer has to grow.
    const big = 'x'.repeat(16 * 1024);
    let published = 0;
    while (stream.connections() === 2 && published < 4_000) {
      for (let i = 0; i < 50; i += 1) {
        published += 1;
        stream.hub.publish('pools', 'pools/acme', { pool: { ...pool(big, published), name: big }, removed: false });
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(stream.connections()).toBe(1);
    expect(stream.hub.stats().subscribers).toBe(1);
    expect(dropped, 'clients reported as dropped for falling behind').toBe(1);

    await fast.next((message) => isDelta(message) && message.seq === published, 0, 20_000);
    const seqs = deltasOf(fast).map((delta) => delta.seq);
    expect(seqs).toEqual(Array.from({ length: published }, (_, i) => i + 1));
    slow.destroy();
  });

  it('holds each connection to its limits', async () => {
    let dropped = 0;
    const stream = await server({
      stream: { maxSubscriptions: 2, maxMessageBytes: 1024, maxConnections: 3 },
      onClientDropped: () => (dropped += 1),
    });
    const alice = await client(stream.url);
    alice.send({ type: 'subscribe', topic: 'pools/acme' });
    alice.send({ type: 'subscribe', topic: 'costs/acme' });
    alice.send({ type: 'subscribe', topic: 'projects/acme' });
    expect(await alice.next((message) => message.type === 'error')).toEqual({
      type: 'error',
      code: 'RESOURCE_EXHAUSTED',
      message: 'a connection may follow at most 2 topics',
      topic: 'projects/acme',
    });
    alice.send({ type: 'unsubscribe', topic: 'costs/acme' });
    await alice.next((message) => message.type === 'unsubscribed');
    alice.send({ type: 'subscribe', topic: 'projects/acme' });
    await alice.next((message) => isSnapshot(message) && message.topic === 'projects/acme');

    const chatty = await client(stream.url);
    chatty.send({ type: 'subscribe', topic: `pools/${'a'.repeat(1500)}` });
    expect(await chatty.next((message) => message.type === 'error')).toEqual({
      type: 'error',
      code: 'TOO_LARGE',
      message: 'a message may be at most 1024 bytes, got 1537',
    });
    chatty.send({ type: 'subscribe', topic: `pools/${'a'.repeat(3000)}` });
    expect((await chatty.whenClosed()).code).toBe(1006);
    const garbled = await client(stream.url);
    garbled.socket.send('not json');
    expect(await garbled.whenClosed()).toEqual({ code: 4400, reason: 'messages must be JSON objects in text frames' });
    const scalar = await client(stream.url);
    scalar.socket.send('42');
    expect(await scalar.whenClosed()).toEqual({ code: 4400, reason: 'messages must be JSON objects in text frames' });

    await client(stream.url);
    await client(stream.url);
    await expect.poll(() => stream.connections()).toBe(3);
    await expect(StreamClient.connect(stream.url, acme)).rejects.toMatchObject({ status: 429 });
    expect(dropped, 'sockets closed for breaking a limit are not reported as dropped for falling behind').toBe(0);
  });

  it('refuses a client that sends faster than its allowance, until the allowance refills', async () => {
    let now = 1_000_000;
    const stream = await server({ stream: { maxMessagesPerSecond: 3 }, now: () => now });
    const alice = await client(stream.url);
    for (const topic of ['pools/acme', 'costs/acme', 'projects/acme', 'pools/acme']) alice.send({ type: 'subscribe', topic });
    const refusal = await alice.next((message) => message.type === 'error');
    expect(refusal).toEqual({
      type: 'error',
      code: 'RESOURCE_EXHAUSTED',
      message: 'a connection may send at most 3 messages a second; retry in 334 ms',
      topic: 'pools/acme',
    });
    expect(alice.messages.filter(isSnapshot).map((snapshot) => snapshot.topic)).toEqual(['pools/acme', 'costs/acme', 'projects/acme']);

    now += 1_000;
    alice.send({ type: 'unsubscribe', topic: 'costs/acme' });
    expect(await alice.next((message) => message.type === 'unsubscribed')).toEqual({ type: 'unsubscribed', topic: 'costs/acme' });
    expect(stream.connections()).toBe(1);
  });

  it('closes a stream when its token expires', async () => {
    const stream = await server();
    const shortLived = tokens.sign({ sub: 'brief', tenant: 'acme', exp: Math.floor(Date.now() / 1000) + 1 });
    const brief = await client(stream.url, shortLived);
    expect(await brief.whenClosed(3_000)).toEqual({ code: 4401, reason: 'token expired' });
  });
});

/** A client that subscribes, then never reads again: its socket's buffers fill up. */
async function stalledClient(port: number, token: string, topic: string): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    [
      'GET /api/stream HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      `Authorization: Bearer ${token}`,
      '',
      '',
    ].join('\r\n'),
  );
  await new Promise((resolve) => socket.once('data', resolve));
  const payload = Buffer.from(JSON.stringify({ type: 'subscribe', topic }));
  const mask = Buffer.from([1, 2, 3, 4]);
  const header = Buffer.from([0x81, 0x80 | payload.length]);
  socket.write(Buffer.concat([header, mask, Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))]));
  socket.pause();
  return socket;
}
