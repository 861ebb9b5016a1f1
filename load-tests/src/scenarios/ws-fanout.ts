/**
 * WebSocket fan-out: N clients subscribed to one topic, updates published to it at a rising
 * rate, once through the gateway's stream (TopicHub on uWebSockets.js, the production path with
 * its token check, sequence numbers and replay buffer) and once through socket.io 4.8.4 doing
 * the same (token checked in a middleware, a room per topic, `io.to(room).emit`). Both servers
 * run in this process, one after the other; the clients run in a child process, so that each
 * side has a core of the two. Every rate is held for a window and ends once what was published
 * in it has arrived; the result is the highest rate of updates delivered whose p99 latency
 * (publish → parsed by the client) stays within the budget and that loses nothing.
 *
 * The clients are the same minimal WebSocket reader for both servers (it speaks engine.io's
 * framing for socket.io), so that client-side cost is equal and small: with the official
 * clients the client process, not the server, would be what is measured at 10,000 sockets.
 *
 * Each side runs as it ships: the gateway with its default 5 ms flush window (deltas of a topic
 * published together go out in one frame, one socket write per subscriber), socket.io with one
 * packet and one write per emit. Those writes, not the bytes, are most of what fan-out costs.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Server as SocketIoServer } from 'socket.io';
import { StreamServer, Tokens } from '@troupe/runtime';
import type { Comparison, Measurement } from '../measure.js';

/**
 * The p99 budget both sides are held to with N clients: 50 ms, or 50 µs per client when that is
 * more. One update reaches N sockets through N writes on the server and N reads on the client,
 * each a system call that also does loopback TCP's work (10–25 µs here), so on two cores no
 * server gets an update to the last of 10,000 clients within 50 ms; the budget stays a fixed
 * multiple of that floor.
 */
function p99BudgetMs(clients: number): number {
  return Math.max(50, clients * 0.05);
}

/** Publishing runs this long before the measured window, so the pipeline is in its steady state. */
const WARM_UP_MS = 300;
const WINDOW_MS = 1_500;
/** What was published in the window must arrive within this long after it, or counts as lost. */
const DRAIN_MS = 5_000;
/** Each rate is this much higher than the last; the ramp stops at the first rate that fails twice. */
const STEP = 1.5;
const MAX_STEPS = 16;
/** When even the first rate breaks the budget, the ramp goes down at most this many steps. */
const MAX_DESCENTS = 4;
/** Deliveries per second of the first step, whatever N is. */
const FIRST_DELIVERIES_PER_SECOND = 25_000;
/** Publishing happens in ticks, as a real source's events arrive in bursts. */
const TICK_MS = 2;
const TOPIC = 'pools/bench';
const CHILD_FLAG = '--ws-fanout-clients';

/** What the clients are told, and what they answer. */
type ToClients =
  | { type: 'connect'; server: 'troupe' | 'socket.io'; port: number; token: string; count: number }
  | { type: 'window'; from: number; to: number }
  | { type: 'report' }
  | { type: 'disconnect' };
type FromClients =
  | { type: 'connected'; connected: number }
  | { type: 'report'; received: number; histogram: number[]; closed: number }
  | { type: 'disconnected' };

/** One step of the ramp. */
interface Step {
  publishRate: number;
  deliveredRate: number;
  lost: number;
  dropped: number;
  p50Ms: number;
  p99Ms: number;
}

/** The side under test: how to publish one update, and how to stop. */
interface Side {
  name: string;
  port: number;
  publish(seq: number, at: number): void;
  stop(): Promise<void>;
}

const now = () => performance.timeOrigin + performance.now();

/** A pool update like the ones the dashboard receives. */
function update(seq: number) {
  return {
    namespace: 'bench',
    name: 'developers',
    role: 'developer',
    replicas: 8,
    ready: 8,
    busy: seq % 9,
    queueDepth: seq % 17,
    tokens: seq * 311,
    costUsd: seq * 0.0004,
    updatedAt: 0,
  };
}

async function troupeSide(tokens: Tokens, clients: number): Promise<Side> {
  // The hub stamps each delta with its clock: here, the publisher's stamp, so both sides count the same window.
  let stamp = 0;
  const server = await StreamServer.start({
    tokens,
    snapshot: () => ({ pools: [] }),
    stream: { maxConnections: clients + 100 },
    now: () => stamp,
    onError: (error) => console.error(`ws-fanout: ${error.message}`),
  });
  return {
    name: 'troupe gateway stream (uWebSockets.js 20.30)',
    port: server.port,
    publish(seq, at) {
      stamp = at;
      server.hub.publish('pools', TOPIC, { pool: update(seq), removed: false });
    },
    stop: async () => server.stop(),
  };
}

async function socketIoSide(tokens: Tokens): Promise<Side> {
  const http = createServer();
  const io = new SocketIoServer(http, { transports: ['websocket'], serveClient: false });
  io.use((socket, next) => {
    try {
      tokens.verify(String((socket.handshake.auth as { token?: unknown }).token ?? ''));
      next();
    } catch (error) {
      next(error as Error);
    }
  });
  io.on('connection', (socket) => {
    socket.on('subscribe', (topic: string, ack: (ok: boolean) => void) => {
      void socket.join(topic);
      ack(true);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const address = http.address();
  return {
    name: 'socket.io 4.8.4 (rooms, websocket transport)',
    port: typeof address === 'object' && address !== null ? address.port : 0,
    publish: (seq, at) =>
      io.to(TOPIC).emit('delta', { type: 'delta', topic: TOPIC, kind: 'pools', seq, at, data: { pool: update(seq), removed: false } }),
    stop: () => new Promise<void>((resolve) => io.close(() => resolve())),
  };
}

/** The client process, and a typed request/answer over its IPC channel. */
function startClients(): {
  ask<T extends FromClients['type']>(message: ToClients, answer: T): Promise<Extract<FromClients, { type: T }>>;
  stop(): Promise<void>;
} {
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], {
    execArgv: ['--import', tsx],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return {
    ask(message, answer) {
      return new Promise((resolve, reject) => {
        const onMessage = (reply: FromClients) => {
          if (reply.type !== answer) return;
          child.off('message', onMessage);
          child.off('exit', onExit);
          resolve(reply as never);
        };
        const onExit = (code: number | null) => reject(new Error(`the fan-out clients exited with ${code}`));
        child.on('message', onMessage);
        child.once('exit', onExit);
        child.send(message);
      });
    },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill();
      await exited;
    },
  };
}

/** Publishes at `rate` per second for the warm-up and the window; resolves with how many were published inside the window. */
async function publishFor(side: Side, rate: number, from: number, to: number, seq: { next: number }): Promise<number> {
  const start = now();
  let sent = 0;
  let inWindow = 0;
  while (now() < to) {
    const due = Math.floor(((now() - start) * rate) / 1000) - sent;
    for (let i = 0; i < due; i += 1) {
      const at = now();
      side.publish(seq.next++, at);
      sent += 1;
      if (at >= from && at < to) inWindow += 1;
    }
    await sleep(TICK_MS);
  }
  return inWindow;
}

/** Ramps the publish rate on one side until a step breaks the budget; returns the best step that kept it. */
async function ramp(side: Side, clients: number, pool: ReturnType<typeof startClients>, token: string): Promise<Step | undefined> {
  const { connected } = await pool.ask(
    { type: 'connect', server: side.name.startsWith('troupe') ? 'troupe' : 'socket.io', port: side.port, token, count: clients },
    'connected',
  );
  if (connected !== clients) throw new Error(`${side.name}: only ${connected} of ${clients} clients connected`);
  let best: Step | undefined;
  const seq = { next: 1 };
  let retried = false;
  let descents = 0;
  let rate = FIRST_DELIVERIES_PER_SECOND / clients;
  try {
    for (let step = 0; step < MAX_STEPS; step += 1) {
      const from = now() + WARM_UP_MS;
      const to = from + WINDOW_MS;
      await pool.ask({ type: 'window', from, to }, 'report');
      const published = await publishFor(side, rate, from, to, seq);
      const expected = published * clients;
      let report = await pool.ask({ type: 'report' }, 'report');
      const deadline = now() + DRAIN_MS;
      while (report.received < expected && report.closed === 0 && now() < deadline) {
        await sleep(50);
        report = await pool.ask({ type: 'report' }, 'report');
      }
      const result: Step = {
        publishRate: rate,
        deliveredRate: report.received / (WINDOW_MS / 1000),
        lost: expected - report.received,
        dropped: report.closed,
        p50Ms: percentile(report.histogram, 50),
        p99Ms: percentile(report.histogram, 99),
      };
      const kept = result.lost === 0 && result.dropped === 0 && result.p99Ms <= p99BudgetMs(clients);
      const outcome = `p99 ${result.p99Ms.toFixed(1)} ms, lost ${result.lost}, dropped ${result.dropped}`;
      const updates = `${Math.round(rate).toLocaleString('en-US')} updates/s`;
      // On a shared machine one stall can spoil a window: a rate gets a second try before it counts as failed.
      if (!kept && !retried) {
        console.log(`  ${side.name}: ${updates} over budget (${outcome}); trying it again`);
        retried = true;
        step -= 1;
        await sleep(500);
        continue;
      }
      retried = false;
      if (!kept && best === undefined && descents < MAX_DESCENTS) {
        // Nothing kept yet, so the first rate was too much here: look below it rather than report no rate.
        console.log(`  ${side.name}: ${updates} over budget again (${outcome}); trying a lower rate`);
        descents += 1;
        rate /= STEP;
        continue;
      }
      if (!kept) {
        console.log(`  ${side.name}: ${updates} over budget again (${outcome}); done`);
        break;
      }
      console.log(
        `  ${side.name}: ${updates} × ${clients.toLocaleString('en-US')} clients → ${Math.round(result.deliveredRate).toLocaleString('en-US')} delivered/s, p99 ${result.p99Ms.toFixed(1)} ms`,
      );
      if (best === undefined || result.deliveredRate > best.deliveredRate) best = result;
      // Found below the first rate: the rates above it were already over budget.
      if (descents > 0) break;
      rate *= STEP;
      // Let the previous step's tail clear before the next one starts.
      await sleep(200);
    }
  } finally {
    await pool.ask({ type: 'disconnect' }, 'disconnected');
  }
  return best;
}

function measurement(side: Side, step: Step | undefined, clients: number): Measurement {
  const budget = `p99 budget ${p99BudgetMs(clients)} ms`;
  if (step === undefined) return { name: side.name, detail: `${budget}: no rate kept it`, rate: 0, unit: 'updates/s' };
  return {
    name: side.name,
    detail: `${budget}: ${Math.round(step.publishRate).toLocaleString('en-US')} updates/s published to ${clients.toLocaleString('en-US')} clients`,
    rate: step.deliveredRate,
    unit: 'updates/s',
    p50Micros: step.p50Ms * 1000,
    p99Micros: step.p99Ms * 1000,
  };
}

/** Delivered updates/s at p99 ≤ the budget, with N clients, ours beside socket.io. */
export async function wsFanout(clients: number): Promise<Comparison[]> {
  const tokens = new Tokens({ secret: randomBytes(32) });
  const token = tokens.sign({ sub: 'bench', tenant: 'bench' });
  const pool = startClients();
  try {
    const ours = await troupeSide(tokens, clients);
    const oursBest = await ramp(ours, clients, pool, token).finally(() => ours.stop());
    const baseline = await socketIoSide(tokens);
    const baselineBest = await ramp(baseline, clients, pool, token).finally(() => baseline.stop());
    return [
      {
        benchmark: 'ws fan-out, updates/s delivered within the same p99 budget',
        size: clients,
        ours: measurement(ours, oursBest, clients),
        baseline: measurement(baseline, baselineBest, clients),
      },
    ];
  } finally {
    await pool.stop();
  }
}

// ---------------------------------------------------------------------------------------
// Latency histogram: 5 % wide buckets from 1 µs to about 20 min, cheap enough for every update.

const BUCKETS = 440;
const GROWTH = Math.log(1.05);

function bucketOf(latencyMs: number): number {
  const micros = latencyMs * 1000;
  return micros <= 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(micros) / GROWTH));
}

/** The upper edge of the bucket holding the p-th percentile, in ms. */
function percentile(histogram: number[], p: number): number {
  const total = histogram.reduce((sum, n) => sum + n, 0);
  if (total === 0) return 0;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let i = 0; i < histogram.length; i += 1) {
    seen += histogram[i]!;
    if (seen >= rank) return Math.exp((i + 1) * GROWTH) / 1000;
  }
  return Infinity;
}

// ---------------------------------------------------------------------------------------
// The client process: N raw WebSocket connections that count and time the updates they parse.

const CONNECT_CONCURRENCY = 256;
const READ_BUFFER = Buffer.alloc(256 * 1024);
const AT = Buffer.from(',"at":');
const DELTA = { troupe: Buffer.from('{"type":"delta"'), 'socket.io': Buffer.from('42["delta"') };

interface Connection {
  socket: Socket;
  pending: Buffer | undefined;
  upgraded: boolean;
  /** Closed by us: not a drop. */
  leaving: boolean;
}

function clientProcess(): void {
  let server: 'troupe' | 'socket.io' = 'troupe';
  let connections: Connection[] = [];
  let window = { from: Infinity, to: -Infinity };
  let received = 0;
  let closed = 0;
  let histogram = new Array<number>(BUCKETS).fill(0);
  const reply = (message: FromClients) => process.send?.(message);

  function frame(payload: string): Buffer {
    const body = Buffer.from(payload);
    const mask = randomBytes(4);
    const header =
      body.length < 126 ? Buffer.from([0x81, 0x80 | body.length]) : Buffer.from([0x81, 0x80 | 126, body.length >> 8, body.length & 0xff]);
    for (let i = 0; i < body.length; i += 1) body[i]! ^= mask[i % 4]!;
    return Buffer.concat([header, mask, body]);
  }

  function onText(connection: Connection, data: Buffer, start: number, end: number, subscribed: () => void, token: string): void {
    if (data.subarray(start, start + DELTA[server].length).equals(DELTA[server])) {
      const at = data.indexOf(AT, start);
      if (at < 0 || at >= end) return;
      let stop = at + AT.length;
      while (stop < end && data[stop] !== 0x2c && data[stop] !== 0x7d) stop += 1;
      const sentAt = Number(data.toString('latin1', at + AT.length, stop));
      if (sentAt < window.from || sentAt >= window.to) return;
      received += 1;
      histogram[bucketOf(now() - sentAt)]! += 1;
      return;
    }
    const text = data.toString('utf8', start, Math.min(end, start + 64));
    if (server === 'troupe') {
      if (text.startsWith('{"type":"snapshot"')) subscribed();
    } else if (text.startsWith('0{')) {
      connection.socket.write(frame(`40${JSON.stringify({ token })}`));
    } else if (text.startsWith('40')) {
      connection.socket.write(frame(`420${JSON.stringify(['subscribe', TOPIC])}`));
    } else if (text.startsWith('430')) {
      subscribed();
    } else if (text === '2') {
      connection.socket.write(frame('3'));
    }
  }

  /** Parses every complete frame in `chunk` (plus what was left of the last one). */
  function onData(connection: Connection, chunk: Buffer, subscribed: () => void, token: string): void {
    const data = connection.pending === undefined ? chunk : Buffer.concat([connection.pending, chunk]);
    let offset = 0;
    if (!connection.upgraded) {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) {
        connection.pending = Buffer.from(data);
        return;
      }
      if (!data.toString('latin1', 0, 12).includes('101')) throw new Error(`upgrade refused: ${data.toString('latin1', 0, end)}`);
      connection.upgraded = true;
      offset = end + 4;
      // Only now: uWS does not read frames pipelined behind the upgrade request.
      if (server === 'troupe') connection.socket.write(frame(JSON.stringify({ type: 'subscribe', topic: TOPIC })));
    }
    while (data.length - offset >= 2) {
      const short = data[offset + 1]! & 0x7f;
      const headerLength = short === 126 ? 4 : short === 127 ? 10 : 2;
      if (data.length - offset < headerLength) break;
      const length = short === 126 ? data.readUInt16BE(offset + 2) : short === 127 ? Number(data.readBigUInt64BE(offset + 2)) : short;
      if (data.length - offset < headerLength + length) break;
      const opcode = data[offset]! & 0x0f;
      const start = offset + headerLength;
      // The gateway batches: a frame holds one message per line.
      for (let line = start; opcode === 1 && line < start + length;) {
        const newline = data.indexOf(0x0a, line);
        const lineEnd = newline < 0 || newline >= start + length ? start + length : newline;
        onText(connection, data, line, lineEnd, subscribed, token);
        line = lineEnd + 1;
      }
      if (opcode === 9) connection.socket.write(Buffer.concat([Buffer.from([0x8a, 0x80]), randomBytes(4)]));
      offset = start + length;
    }
    connection.pending = offset < data.length ? Buffer.from(data.subarray(offset)) : undefined;
  }

  function open(port: number, token: string): Promise<Connection> {
    return new Promise((resolve, reject) => {
      let ready = false;
      const subscribed = () => {
        if (ready) return;
        ready = true;
        resolve(connection);
      };
      // Every socket reads into the one buffer: no allocation per read, which is most of a reader's cost.
      const socket = connect({
        port,
        host: '127.0.0.1',
        onread: {
          buffer: READ_BUFFER,
          callback: (length) => {
            onData(connection, READ_BUFFER.subarray(0, length), subscribed, token);
            return true;
          },
        },
      });
      const connection: Connection = { socket, pending: undefined, upgraded: false, leaving: false };
      socket.on('close', () => {
        if (!ready) reject(new Error('closed before subscribing'));
        else if (!connection.leaving) closed += 1;
      });
      socket.on('error', () => undefined);
      socket.once('connect', () => {
        const path = server === 'troupe' ? '/api/stream' : '/socket.io/?EIO=4&transport=websocket';
        const auth = server === 'troupe' ? `Authorization: Bearer ${token}\r\n` : '';
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${auth}\r\n`,
        );
      });
    });
  }

  process.on('message', (message: ToClients) => {
    void (async () => {
      switch (message.type) {
        case 'connect': {
          server = message.server;
          closed = 0;
          let next = 0;
          const lanes = Array.from({ length: Math.min(CONNECT_CONCURRENCY, message.count) }, async () => {
            while (next < message.count) {
              next += 1;
              connections.push(await open(message.port, message.token));
            }
          });
          await Promise.allSettled(lanes);
          reply({ type: 'connected', connected: connections.length });
          return;
        }
        case 'window':
          window = { from: message.from, to: message.to };
          received = 0;
          histogram = new Array<number>(BUCKETS).fill(0);
          reply({ type: 'report', received, histogram, closed });
          return;
        case 'report':
          reply({ type: 'report', received, histogram, closed });
          return;
        case 'disconnect':
          for (const connection of connections) {
            connection.leaving = true;
            connection.socket.destroy();
          }
          connections = [];
          // The server notices the closes on its own time; give it a moment before the next side connects.
          await sleep(500);
          reply({ type: 'disconnected' });
          return;
      }
    })();
  });
}

if (process.argv.includes(CHILD_FLAG)) clientProcess();
