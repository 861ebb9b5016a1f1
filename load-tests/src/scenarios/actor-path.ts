/**
 * The in-process actor path: ping-pong and fan-out through Troupe's actors, side by side with
 * (a) the same flow through plain async functions and queueMicrotask and (b) nact; and the same
 * ping-pong with durable actors over the embedded log and SQLite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import nact from 'nact';
import { ActorSystem, defineActor, openStore, openTransport, type ActorType } from '@troupe/runtime';
import { percentileMicros, type Comparison, type Measurement } from '../measure.js';

/** Fan-out spreads its messages over this many actors. */
const FAN_OUT_ACTORS = 1_000;

type Ping = { n: number };

/** The runtime under test: an ActorSystem on a throwaway embedded log and SQLite store. */
async function withSystem<T>(actors: ActorType<any, any, any, any>[], run: (system: ActorSystem) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-bench-'));
  const transport = await openTransport({ kind: 'embedded', dir: join(dir, 'log') });
  const store = await openStore({ kind: 'embedded', path: join(dir, 'store.db') });
  const system = await ActorSystem.start({ transport, store, actors, partitions: 4 });
  try {
    return await run(system);
  } finally {
    await system.stop();
    await transport.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Ping-pong: A sends n to B, B sends it back, A records the round trip and starts the next.
 * `send(to, n)` is the only thing that differs between the implementations.
 */
function pingPongDriver(rounds: number) {
  const latencies = new Float64Array(rounds);
  let started = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    latencies,
    done,
    /** A got round trip n back. Returns the next n to send, or undefined when finished. */
    back(n: number): number | undefined {
      latencies[n] = performance.now() - started;
      if (n + 1 === rounds) {
        finish();
        return undefined;
      }
      started = performance.now();
      return n + 1;
    },
    begin(): void {
      started = performance.now();
    },
  };
}

function measured(name: string, messages: number, elapsedMs: number, latencies?: Float64Array): Measurement {
  return {
    name,
    rate: messages / (elapsedMs / 1000),
    unit: 'msg/s',
    ...(latencies ? { p50Micros: percentileMicros(latencies, 50), p99Micros: percentileMicros(latencies, 99) } : {}),
  };
}

async function barePingPong(rounds: number): Promise<Measurement> {
  const driver = pingPongDriver(rounds);
  const pong = async (n: number) => queueMicrotask(() => void ping(n));
  const ping = async (n: number) => {
    const next = driver.back(n);
    if (next !== undefined) queueMicrotask(() => void pong(next));
  };
  const t0 = performance.now();
  driver.begin();
  queueMicrotask(() => void pong(0));
  await driver.done;
  return measured('async functions + queueMicrotask', rounds * 2, performance.now() - t0, driver.latencies);
}

async function nactPingPong(rounds: number): Promise<Measurement> {
  const system = nact.start();
  const driver = pingPongDriver(rounds);
  // eslint-disable-next-line prefer-const
  let a: nact.Ref<Ping>;
  const b = nact.spawnStateless(system, (message: Ping) => nact.dispatch(a, message), 'b');
  a = nact.spawnStateless(
    system,
    (message: Ping) => {
      const next = driver.back(message.n);
      if (next !== undefined) nact.dispatch(b, { n: next });
    },
    'a',
  );
  const t0 = performance.now();
  driver.begin();
  nact.dispatch(b, { n: 0 });
  await driver.done;
  const elapsed = performance.now() - t0;
  nact.stop(system);
  return measured('nact 7.6.2', rounds * 2, elapsed, driver.latencies);
}

function pingPongActors(durable: boolean, driver: ReturnType<typeof pingPongDriver>) {
  const suffix = durable ? 'durable' : 'local';
  const pinger: ActorType<null, Ping, never, void> = defineActor({
    type: `pinger-${suffix}`,
    durable,
    initialState: () => null,
    receive(ctx, message) {
      const next = driver.back(message.n);
      if (next !== undefined) ctx.tell(ponger, 'b', { n: next });
    },
    apply: (state) => state,
  });
  const ponger: ActorType<null, Ping, never, void> = defineActor({
    type: `ponger-${suffix}`,
    durable,
    initialState: () => null,
    receive: (ctx, message) => ctx.tell(pinger, 'a', message),
    apply: (state) => state,
  });
  return { pinger, ponger };
}

async function troupePingPong(rounds: number, durable: boolean): Promise<Measurement> {
  const driver = pingPongDriver(rounds);
  const { pinger, ponger } = pingPongActors(durable, driver);
  return withSystem([pinger, ponger], async (system) => {
    const t0 = performance.now();
    driver.begin();
    await system.tell(ponger, 'b', { n: 0 });
    await driver.done;
    const name = durable ? 'troupe durable actors (embedded log + SQLite)' : 'troupe actors (in-process)';
    return measured(name, rounds * 2, performance.now() - t0, driver.latencies);
  });
}

/**
 * Fan-out: `messages` messages spread over FAN_OUT_ACTORS actors, each answering a collector;
 * latency is from a message's send to the collector's receipt of its answer.
 */
function fanOutDriver(messages: number) {
  const sentAt = new Float64Array(messages);
  const latencies = new Float64Array(messages);
  let received = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    latencies,
    done,
    sent(n: number): void {
      sentAt[n] = performance.now();
    },
    collected(n: number): void {
      latencies[n] = performance.now() - (sentAt[n] ?? 0);
      received += 1;
      if (received === messages) finish();
    },
  };
}

async function bareFanOut(messages: number): Promise<Measurement> {
  const driver = fanOutDriver(messages);
  const collector = async (n: number) => driver.collected(n);
  const workers = Array.from({ length: FAN_OUT_ACTORS }, () => async (n: number) => queueMicrotask(() => void collector(n)));
  const t0 = performance.now();
  for (let n = 0; n < messages; n += 1) {
    driver.sent(n);
    const worker = workers[n % FAN_OUT_ACTORS]!;
    queueMicrotask(() => void worker(n));
  }
  await driver.done;
  return measured('async functions + queueMicrotask', messages * 2, performance.now() - t0, driver.latencies);
}

async function nactFanOut(messages: number): Promise<Measurement> {
  const system = nact.start();
  const driver = fanOutDriver(messages);
  const collector = nact.spawnStateless(system, (message: Ping) => driver.collected(message.n), 'collector');
  const workers = Array.from({ length: FAN_OUT_ACTORS }, (_, i) =>
    nact.spawnStateless(system, (message: Ping) => nact.dispatch(collector, message), `worker-${i}`),
  );
  const t0 = performance.now();
  for (let n = 0; n < messages; n += 1) {
    driver.sent(n);
    nact.dispatch(workers[n % FAN_OUT_ACTORS]!, { n });
  }
  await driver.done;
  const elapsed = performance.now() - t0;
  nact.stop(system);
  return measured('nact 7.6.2', messages * 2, elapsed, driver.latencies);
}

async function troupeFanOut(messages: number): Promise<Measurement> {
  const driver = fanOutDriver(messages);
  const collector = defineActor<null, Ping, never, void>({
    type: 'collector',
    durable: false,
    initialState: () => null,
    receive: (_ctx, message) => driver.collected(message.n),
    apply: (state) => state,
  });
  const worker = defineActor<null, Ping, never, void>({
    type: 'worker',
    durable: false,
    initialState: () => null,
    receive: (ctx, message) => ctx.tell(collector, 'c', message),
    apply: (state) => state,
  });
  return withSystem([collector, worker], async (system) => {
    const t0 = performance.now();
    for (let n = 0; n < messages; n += 1) {
      driver.sent(n);
      void system.tell(worker, `w${n % FAN_OUT_ACTORS}`, { n });
    }
    await driver.done;
    return measured('troupe actors (in-process)', messages * 2, performance.now() - t0, driver.latencies);
  });
}

/** Runs every comparison of the actor path at `size` messages. */
export async function actorPath(size: number): Promise<Comparison[]> {
  const rounds = size / 2;
  // Warm the JIT on every path once, so the first measured one is not penalised.
  await Promise.all([barePingPong(1_000), nactPingPong(1_000), troupePingPong(1_000, false)]);
  const pingBare = await barePingPong(rounds);
  const pingNact = await nactPingPong(rounds);
  const pingOurs = await troupePingPong(rounds, false);
  const fanBare = await bareFanOut(size / 2);
  const fanNact = await nactFanOut(size / 2);
  const fanOurs = await troupeFanOut(size / 2);
  // A durable turn is an fsync'd log append plus a SQLite transaction: far fewer per second.
  const durableRounds = Math.max(50, Math.round(rounds / 100));
  const durable = await troupePingPong(durableRounds, true);
  const durableLocal = await troupePingPong(durableRounds, false);
  return [
    { benchmark: 'actor ping-pong', size, ours: pingOurs, baseline: pingBare },
    { benchmark: 'actor ping-pong', size, ours: pingOurs, baseline: pingNact },
    { benchmark: 'actor fan-out (1,000 actors)', size, ours: fanOurs, baseline: fanBare },
    { benchmark: 'actor fan-out (1,000 actors)', size, ours: fanOurs, baseline: fanNact },
    { benchmark: 'actor ping-pong, durable log on', size: durableRounds * 2, ours: durable, baseline: durableLocal },
  ];
}
