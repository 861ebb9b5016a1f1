/**
 * The actor system: runs virtual actors over a Transport and a Store. Each actor type has a
 * topic; a consumer group spreads its partitions over the runtime nodes, and the node owning a
 * partition runs the turns of the actors hashed to it, one message at a time per actor. A record
 * carries one message or a pack of them (packing.ts); an input's offset here is its position,
 * which tells apart the messages of one record.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadLetter, Envelope } from '@troupe/proto';
import { ActorError, RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { ActorRecord, ActorRef, Fence, OutboxMessage, Store, TurnWrite } from '../store/store.js';
import type { PartitionAssignment, PartitionBatch, Subscription, Transport } from '../transport/transport.js';
import { actorTopic, jsonCodec, type ActorType } from './actor.js';
import { ActorClient, UNTRACED, type MessageTracing } from './actor-client.js';
import { LocalActors } from './local-actors.js';
import { inputsOf, type Input } from './packing.js';
import { RETRY_DEFAULTS, retryDelay, type RetryPolicy } from './supervision.js';
import { TimerService } from './timers.js';
import { Turn, shardOf, type AnyActorType, type LocalTell, type TurnHost } from './turn.js';

/** Where messages that kept failing go, with their error. */
export const DEAD_LETTER_TOPIC = 'troupe.deadletter';

/**
 * Most records of a partition handed to a node at once: about what one Kafka fetch of a
 * partition (1 MiB) holds of small actor messages. An actor's records in a batch are committed in
 * one write, so a backlog goes through in long runs rather than many short ones, each of which
 * pays for its own store read and write, and in fewer batches, each of which commits its offset.
 */
const RECORDS_PER_BATCH = 5_000;

/**
 * How many assigned partitions a node claims at once. A node that takes over a dead one's
 * partitions resumes only once it owns all of them, and on Cassandra a claim is two Paxos
 * rounds: one after the other, 256 claims took 0.9–1.3 s on a single local node, 32 at a time
 * 0.25–0.5 s (more at a time gained nothing there).
 */
const CONCURRENT_CLAIMS = 32;

/**
 * How a turn of a durable actor ended: applied (`ok`); failed, to be retried or redelivered
 * (`error`); refused because its input was applied already (`duplicate`). `dead_lettered`
 * counts a message given up on after its last failed turn.
 */
export type TurnOutcome = 'ok' | 'error' | 'duplicate' | 'dead_lettered';

/** Told what a node does, for metrics. Every method is optional, is called synchronously and must not throw. */
export interface ActorSystemObserver {
  turnEnded?(actorType: string, outcome: TurnOutcome): void;
  /** Partitions of actor topics this node took over, once their fences are claimed. */
  partitionsAssigned?(assignments: readonly PartitionAssignment[]): void;
  /** Partitions of actor topics this node gave up. */
  partitionsRevoked?(assignments: readonly PartitionAssignment[]): void;
}

/**
 * Traces turns and the messages they send (OpenTelemetry's: tracing/runtime-tracing.ts); the
 * default traces nothing.
 */
export interface ActorSystemTracer extends MessageTracing {
  /**
   * Runs one try of a turn's handler, in a span that continues the trace `envelope` carries, so
   * that what the handler sends carries that span on. A handler that returns a value rather than
   * a promise may be answered with the value.
   */
  turn<T>(actor: ActorRef, envelope: Envelope, attempt: number, handle: () => T | Promise<T>): T | Promise<T>;
}

export interface ActorSystemOptions {
  transport: Transport;
  store: Store;
  /** Every actor type this node runs. */
  actors: readonly AnyActorType[];
  /** Partitions of each actor topic; fixed once the topic exists (default 16). */
  partitions: number;
  /** The consumer group of all runtime nodes (default `troupe.runtime`). */
  groupId: string;
  /** This node's id, unique in the cluster (default: random). */
  nodeId: string;
  /** An actor idle this long leaves memory; its state stays durable (default 60 s). */
  passivateAfterMs: number;
  /** Turns in flight per partition, across its actors (default 64). */
  maxInFlightPerPartition: number;
  retry: RetryPolicy;
  /** How long `ask` waits by default (default 30 s). */
  askTimeoutMs: number;
  clock: () => number;
  /** Where errors that have no caller go (default: console.error). */
  onError: (error: Error) => void;
  /** Told of turns and partition ownership, for metrics (default: nobody). */
  observer: ActorSystemObserver;
  /** Traces each turn and stamps the messages it sends with its trace (default: nothing traced). */
  tracer: ActorSystemTracer;
}

export const ACTOR_SYSTEM_DEFAULTS = {
  partitions: 16,
  groupId: 'troupe.runtime',
  passivateAfterMs: 60_000,
  maxInFlightPerPartition: 64,
  retry: RETRY_DEFAULTS,
  askTimeoutMs: 30_000,
  clock: Date.now,
  onError: (error: Error) => console.error(`troupe runtime: ${error.message}`),
  observer: {},
  tracer: { ...UNTRACED, turn: (_actor, _envelope, _attempt, handle) => handle() },
} as const satisfies Partial<ActorSystemOptions>;

type Required = 'transport' | 'store' | 'actors';

/** An actor in memory: its folded state and where its journal stands. */
interface Activation {
  ref: ActorRef;
  /** Its type and codec, with what its turns need of the system. */
  host: TurnHost;
  state: unknown;
  seq: number;
  snapshotSeq: number;
  /** The position of the last input applied; inputs at or below it are replays. */
  lastInputOffset: number | undefined;
  /** Outbox messages committed but not yet taken by the transport. */
  unsent: OutboxMessage[];
  scope: string;
  lastUsed: number;
  busy: boolean;
}

/** Where a turn starts from: the activation, or the turn staged before it. */
interface TurnBase {
  state: unknown;
  seq: number;
  snapshotSeq: number;
}

/** A turn run in memory, with the write that makes it durable and the effects that follow. */
interface StagedTurn {
  envelope: Envelope;
  offset: number;
  reply: unknown;
  write: TurnWrite;
  localTells: LocalTell[] | undefined;
  /** The activation once the write is committed. */
  after: TurnBase;
}

/**
 * Starts a node of the actor system.
 *
 * @example
 * const system = await ActorSystem.start({ transport, store, actors: [counter] });
 * await system.tell(counter, 'c1', { add: 2 });
 * const total = await system.ask(counter, 'c1', { get: true });
 * await system.stop();
 */
export class ActorSystem {
  private readonly options: ActorSystemOptions;
  private readonly types = new Map<string, AnyActorType>();
  /** Per durable actor type, by type name: what its turns need. */
  private readonly hosts = new Map<string, TurnHost>();
  private readonly activations = new Map<string, Activation>();
  private readonly fences = new Map<string, Fence>();
  private readonly timers: TimerService;
  private readonly client: ActorClient;
  private readonly local: LocalActors;
  private subscription: Subscription | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private stopped = false;

  private constructor(options: Pick<ActorSystemOptions, Required> & Partial<ActorSystemOptions>) {
    this.options = { ...ACTOR_SYSTEM_DEFAULTS, nodeId: randomUUID(), ...options };
    validate(this.options);
    for (const type of this.options.actors) if (type.durable !== false) this.types.set(actorTopic(type.type), type);
    this.client = new ActorClient(this.options.transport, {
      clientId: this.options.nodeId,
      groupId: this.options.groupId,
      askTimeoutMs: this.options.askTimeoutMs,
      clock: this.options.clock,
      tracing: this.options.tracer,
    });
    for (const type of this.types.values()) {
      this.hosts.set(type.type, { type, codec: type.codec ?? jsonCodec, client: this.client, partitions: this.options.partitions });
    }
    const reportError = (error: unknown) => this.options.onError(toError(error));
    this.local = new LocalActors(
      this.options.clock,
      {
        tell: (type, id, message) => void this.client.tell(type, id, message).catch(reportError),
        publish: (topic, key, value) => void this.options.transport.send([{ topic, key, value }]).catch(reportError),
      },
      this.options.onError,
    );
    this.timers = new TimerService(this.options.store, this.options.transport, this.options.clock, (error) =>
      this.options.onError(toError(error)),
    );
  }

  static async start(options: Pick<ActorSystemOptions, Required> & Partial<ActorSystemOptions>): Promise<ActorSystem> {
    const system = new ActorSystem(options);
    await system.open();
    return system;
  }

  /** This node's id (replies to its asks are addressed to it). */
  get nodeId(): string {
    return this.options.nodeId;
  }

  /** Actors currently in memory on this node, durable or not. */
  get activeActors(): number {
    return this.activations.size + this.local.size;
  }

  /** Sends a message; see {@link ActorClient.tell}. */
  tell<M>(type: ActorType<unknown, M, unknown, unknown>, id: string, message: M, options: { id?: string } = {}): Promise<void> {
    this.ensureOpen();
    if (type.durable === false) {
      this.local.deliver(type, id, message, undefined);
      return Promise.resolve();
    }
    return this.client.tell(type, id, message, options);
  }

  /** Sends a message and waits for the handler's return value; see {@link ActorClient.ask}. */
  ask<M, R>(type: ActorType<unknown, M, unknown, R>, id: string, message: M, options: { timeoutMs?: number } = {}): Promise<R> {
    this.ensureOpen();
    if (type.durable === false) return this.local.ask<R>(type, id, message);
    return this.client.ask(type, id, message, options);
  }

  /** Finishes in-flight turns, leaves the group and stops timers. The transport and store stay open. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.sweeper);
    await this.timers.stop();
    await this.subscription?.close();
    await this.client.close();
    this.activations.clear();
    this.local.clear();
  }

  private async open(): Promise<void> {
    const { transport, partitions } = this.options;
    this.sweeper = setInterval(() => this.passivateIdle(), Math.max(10, this.options.passivateAfterMs / 2));
    this.sweeper.unref();
    if (this.types.size === 0) return;
    for (const topic of this.types.keys()) await transport.createTopic(topic, partitions);
    await transport.createTopic(DEAD_LETTER_TOPIC, 1);
    this.subscription = await transport.subscribe({
      groupId: this.options.groupId,
      topics: [...this.types.keys()],
      maxBatchSize: RECORDS_PER_BATCH,
      eachBatch: (batch) => this.handleBatch(batch),
      onAssigned: (assignments) => this.assigned(assignments),
      onRevoked: async (assignments) => this.revoked(assignments),
    });
  }

  private async assigned(assignments: readonly PartitionAssignment[]): Promise<void> {
    // A failed claim fails the call only once the claims under way ended: the transport calls it
    // again, and a claim of this attempt ending after one of the next would leave the older epoch
    // in `fences`, to be refused on every write.
    await forEachLimited(assignments, CONCURRENT_CLAIMS, async ({ topic, partition }) => {
      // The store numbers owners itself: a transport's generations may start again from 1.
      const scope = `${topic}/${partition}`;
      this.fences.set(scope, { scope, epoch: await this.options.store.claimNext(scope) });
    });
    this.timers.own(assignments.map(({ topic, partition }) => shardOf(this.types.get(topic)?.type ?? topic, partition)));
    this.options.observer.partitionsAssigned?.(assignments);
  }

  private revoked(assignments: readonly PartitionAssignment[]): void {
    const scopes = new Set(assignments.map(({ topic, partition }) => `${topic}/${partition}`));
    for (const scope of scopes) this.fences.delete(scope);
    // The next owner may write these actors from now on; what this node holds is stale.
    for (const [key, activation] of this.activations) if (scopes.has(activation.scope)) this.activations.delete(key);
    this.timers.disown(assignments.map(({ topic, partition }) => shardOf(this.types.get(topic)?.type ?? topic, partition)));
    this.options.observer.partitionsRevoked?.(assignments);
  }

  private async handleBatch(batch: PartitionBatch): Promise<void> {
    const type = this.types.get(batch.topic);
    if (type === undefined) throw new RuntimeError(RuntimeErrorCode.UnknownActorType, `no actor type registered for topic ${batch.topic}`);
    const byRecord = batch.records.map((record) => inputsOf(record));
    const byActor = new Map<string, Input[]>();
    for (const [i, inputs] of byRecord.entries()) {
      for (const input of inputs) {
        const id = input.envelope.target?.id ?? batch.records[i]!.key;
        const queue = byActor.get(id);
        if (queue) queue.push(input);
        else byActor.set(id, [input]);
      }
    }
    const done = new Set<number>();
    // The first failure (a lost partition, a store that is down) stops the whole batch.
    const failed = new AbortController();
    const signal = AbortSignal.any([batch.signal, failed.signal]);
    const scope = `${batch.topic}/${batch.partition}`;
    await forEachLimited([...byActor], this.options.maxInFlightPerPartition, async ([id, inputs]) => {
      try {
        for (let next = 0; next < inputs.length && !signal.aborted;) {
          next = await this.deliver(type, id, scope, inputs, next, done);
        }
        await batch.heartbeat();
      } catch (error) {
        failed.abort(error);
      }
    });
    // Commit only the prefix of the batch that is fully applied; the rest comes again.
    let resolved: number | undefined;
    for (const [i, inputs] of byRecord.entries()) {
      if (!inputs.every((input) => done.has(input.offset))) break;
      resolved = batch.records[i]!.offset;
    }
    if (resolved !== undefined) batch.resolveOffset(resolved);
    if (failed.signal.aborted) throw failed.signal.reason;
  }

  /**
   * Delivers one actor's inputs from `from` on and returns where it stopped. The turns run one
   * after another in memory and are committed together, so a busy actor pays for one write per
   * run of inputs rather than one per input; their replies and outbox go out once that write
   * is durable. A turn that throws ends the run, and its input goes through supervision alone.
   */
  private async deliver(
    type: AnyActorType,
    id: string,
    scope: string,
    inputs: readonly Input[],
    from: number,
    done: Set<number>,
  ): Promise<number> {
    const activation = this.activations.get(activationKey(type, id)) ?? (await this.activate(type, id, scope));
    activation.busy = true;
    try {
      if (activation.unsent.length > 0) await this.flush(activation);
      const run = inputs.slice(from);
      const applied = await this.appliedAmong(
        activation,
        run.map((input) => input.envelope),
        run,
      );
      const staged: StagedTurn[] = [];
      let next = from;
      let failing: { envelope: Envelope; offset: number; error: Error } | undefined;
      for (; next < inputs.length && failing === undefined; next += 1) {
        const { offset, envelope } = inputs[next]!;
        if (applied.has(envelope.id)) {
          done.add(offset);
          continue;
        }
        try {
          const turn = this.stage(activation, staged.at(-1)?.after ?? activation, envelope, offset, 1);
          staged.push(turn instanceof Promise ? await turn : turn);
          // A second copy later in the run is a duplicate of this one.
          applied.add(envelope.id);
        } catch (error) {
          failing = { envelope, offset, error: toError(error) };
        }
      }
      if (!(await this.commitStaged(activation, staged))) {
        // Refused as a whole (a conflict, a duplicate): each record goes its own way against what
        // is stored. A turn stored all the same landed: a write that timed out may have.
        const stored = await this.appliedAmong(
          activation,
          staged.map((turn) => turn.envelope),
          staged,
        );
        for (const turn of staged) {
          if (stored.has(turn.envelope.id)) await this.landed(activation, turn);
          else await this.supervise(activation, turn.envelope, turn.offset);
          done.add(turn.offset);
        }
      } else {
        for (const turn of staged) done.add(turn.offset);
      }
      if (failing) {
        await this.supervise(activation, failing.envelope, failing.offset, failing.error);
        done.add(failing.offset);
      }
      return next;
    } finally {
      activation.busy = false;
      activation.lastUsed = this.options.clock();
    }
  }

  /**
   * The ids among `envelopes` (at the offsets beside them) that were applied already: replays
   * after a crash or a rebalance, at or below the last applied offset, and re-sent copies, which
   * the store knows by id (asked once for the whole run, and only about inputs past that offset).
   */
  private async appliedAmong(
    activation: Activation,
    envelopes: readonly Envelope[],
    at: readonly { offset: number }[],
  ): Promise<Set<string>> {
    const replayed = new Set<string>();
    const unknown: string[] = [];
    envelopes.forEach((envelope, i) => {
      if (activation.lastInputOffset !== undefined && at[i]!.offset <= activation.lastInputOffset) replayed.add(envelope.id);
      else unknown.push(envelope.id);
    });
    if (unknown.length === 0) return replayed;
    const applied = await this.options.store.appliedInputs(activation.ref, unknown);
    for (const id of replayed) applied.add(id);
    return applied;
  }

  /**
   * Commits staged turns and settles them (state, outbox, replies). Resolves false, with nothing
   * settled and the activation reloaded, when the store refused them for this actor's sake; a
   * lost partition or a store that is down rejects.
   */
  private async commitStaged(activation: Activation, staged: readonly StagedTurn[]): Promise<boolean> {
    if (staged.length === 0) return true;
    try {
      await this.options.store.commitTurns(staged.map((turn) => turn.write));
    } catch (thrown) {
      const error = toError(thrown);
      if (error instanceof RuntimeError && (error.code === RuntimeErrorCode.Fenced || error.code === RuntimeErrorCode.Unavailable))
        throw error;
      // Part of them may be stored; the journal says which.
      await this.reload(activation);
      return false;
    }
    for (const turn of staged) {
      this.settle(activation, turn);
      this.options.observer.turnEnded?.(activation.ref.type, 'ok');
    }
    await this.flushCommitted(activation);
    // Most turns answer a tell, which wants no reply.
    for (const turn of staged) {
      if (turn.envelope.replyTo !== undefined)
        await this.client.reply(turn.envelope, { ok: true, value: turn.reply }, activation.host.codec);
    }
    return true;
  }

  /**
   * Runs a message's turn, retrying with backoff, and dead-letters it when tries run out.
   * `firstFailure` is how its first try already failed, when it ran as part of a run of turns.
   */
  private async supervise(activation: Activation, envelope: Envelope, offset: number, firstFailure?: Error): Promise<void> {
    const { retry } = this.options;
    // The last try whose commit was refused as a conflict: it may have landed all the same.
    let unsure: StagedTurn | undefined;
    for (let attempt = 1; ; attempt += 1) {
      let error: Error;
      let turn: StagedTurn | undefined;
      if (attempt === 1 && firstFailure !== undefined) error = firstFailure;
      else {
        try {
          turn = await this.stage(activation, activation, envelope, offset, attempt);
          await this.options.store.commitTurn(turn.write);
          this.settle(activation, turn);
          this.options.observer.turnEnded?.(activation.ref.type, 'ok');
          await this.flushCommitted(activation);
          await this.client.reply(envelope, { ok: true, value: turn.reply }, activation.host.codec);
          return;
        } catch (thrown) {
          error = toError(thrown);
        }
      }
      if (isDuplicate(error) && unsure !== undefined) {
        await this.landed(activation, unsure);
        return;
      }
      this.options.observer.turnEnded?.(activation.ref.type, isDuplicate(error) ? 'duplicate' : 'error');
      // Losing the partition, or a store or broker that is down, is no fault of the message:
      // the batch stops and its unapplied records come again, which pauses consumption.
      if (error instanceof RuntimeError && (error.code === RuntimeErrorCode.Fenced || error.code === RuntimeErrorCode.Unavailable))
        throw error;
      if (isDuplicate(error)) return;
      if (error instanceof RuntimeError && error.code === RuntimeErrorCode.Conflict) {
        // Someone else wrote this actor's journal, or this try's write timed out and landed; continue from what is stored.
        unsure = turn;
        await this.reload(activation);
      }
      if (attempt >= retry.maxAttempts) {
        await this.deadLetter(activation, envelope, offset, attempt, error);
        return;
      }
      await sleep(retryDelay(retry, attempt));
    }
  }

  /**
   * Runs a turn in memory from `base` (the activation, or the turn staged before it) and returns
   * its write and effects; nothing of the activation changes until {@link settle}. A handler that
   * returns a value, as most do, is staged at once rather than in a promise.
   */
  private stage(
    activation: Activation,
    base: TurnBase,
    envelope: Envelope,
    offset: number,
    attempt: number,
  ): StagedTurn | Promise<StagedTurn> {
    const { host, ref } = activation;
    const message = host.codec.decode(envelope.payload);
    const turn = new Turn(host, ref, base.state, envelope, attempt, this.options.clock());
    const reply = this.options.tracer.turn(ref, envelope, attempt, () => host.type.receive(turn, message));
    if (isThenable(reply)) return Promise.resolve(reply).then((value) => this.staged(activation, base, turn, envelope, offset, value));
    return this.staged(activation, base, turn, envelope, offset, reply);
  }

  /** A turn whose handler returned `reply`, with the write that makes it durable. */
  private staged(activation: Activation, base: TurnBase, turn: Turn, envelope: Envelope, offset: number, reply: unknown): StagedTurn {
    const { host, ref } = activation;
    const seq = base.seq + turn.events.length;
    const snapshot = seq - base.snapshotSeq >= (host.type.snapshotEvery ?? 100) ? { seq, state: host.codec.encode(turn.state) } : undefined;
    return {
      envelope,
      offset,
      reply,
      localTells: turn.localTells,
      after: { state: turn.state, seq, snapshotSeq: snapshot ? seq : base.snapshotSeq },
      write: {
        actor: ref,
        expectedSeq: base.seq,
        events: turn.events,
        input: { id: envelope.id, offset },
        snapshot,
        timersSet: turn.timersSet,
        timersCancelled: turn.timersCancelled,
        outbox: turn.outbox,
        fence: this.fences.get(activation.scope),
      },
    };
  }

  /** Makes a committed turn the activation's state and starts its local effects. */
  private settle(activation: Activation, turn: StagedTurn): void {
    activation.state = turn.after.state;
    activation.seq = turn.after.seq;
    activation.snapshotSeq = turn.after.snapshotSeq;
    activation.lastInputOffset = Math.max(turn.offset, activation.lastInputOffset ?? -1);
    if (turn.write.outbox !== undefined) activation.unsent.push(...turn.write.outbox);
    this.startLocalEffects(turn);
  }

  /** Starts what a committed turn does on this node: its tells to in-memory actors, and its timers. */
  private startLocalEffects(turn: StagedTurn): void {
    if (turn.localTells !== undefined)
      for (const [target, id, message] of turn.localTells) this.local.deliver(target, id, message, undefined);
    if (turn.write.timersSet !== undefined && turn.write.timersSet.length > 0) this.timers.wake();
  }

  /**
   * Finishes a turn whose commit was reported failed but is stored (a conditional write that
   * timed out and was applied): the reload that found it took in its state and outbox, and what
   * followed its commit happens now.
   */
  private async landed(activation: Activation, turn: StagedTurn): Promise<void> {
    this.options.observer.turnEnded?.(activation.ref.type, 'ok');
    this.startLocalEffects(turn);
    await this.flushCommitted(activation);
    if (turn.envelope.replyTo !== undefined) await this.client.reply(turn.envelope, { ok: true, value: turn.reply }, activation.host.codec);
  }

  private async deadLetter(activation: Activation, envelope: Envelope, offset: number, attempts: number, error: Error): Promise<void> {
    const code = error instanceof RuntimeError ? error.code : RuntimeErrorCode.TurnFailed;
    const letter = DeadLetter.encode({
      envelope,
      errorCode: code,
      errorMessage: error.message,
      attempts,
      failedAt: this.options.clock(),
    }).finish();
    await this.options.transport.send([{ topic: DEAD_LETTER_TOPIC, key: `${activation.ref.type}/${activation.ref.id}`, value: letter }]);
    // Recorded as applied, so the poisonous message is not delivered again; the actor goes on.
    await this.options.store.commitTurn({
      actor: activation.ref,
      expectedSeq: activation.seq,
      events: [],
      input: { id: envelope.id, offset },
      fence: this.fences.get(activation.scope),
    });
    activation.lastInputOffset = Math.max(offset, activation.lastInputOffset ?? -1);
    this.options.observer.turnEnded?.(activation.ref.type, 'dead_lettered');
    this.options.onError(
      new ActorError(
        RuntimeErrorCode.TurnFailed,
        activation.ref,
        `dead-lettered message ${envelope.id} after ${attempts} tries: ${error.message}`,
        { cause: error },
      ),
    );
    await this.client.reply(envelope, { ok: false, code, message: error.message }, activation.host.codec);
  }

  private async activate(type: AnyActorType, id: string, scope: string): Promise<Activation> {
    const key = activationKey(type, id);
    const existing = this.activations.get(key);
    if (existing) return existing;
    const activation: Activation = {
      ref: { type: type.type, id },
      host: this.hosts.get(type.type)!,
      state: undefined,
      seq: 0,
      snapshotSeq: 0,
      lastInputOffset: undefined,
      unsent: [],
      scope,
      lastUsed: this.options.clock(),
      busy: false,
    };
    await this.reload(activation);
    this.activations.set(key, activation);
    return activation;
  }

  private async reload(activation: Activation): Promise<void> {
    const record: ActorRecord = await this.options.store.load(activation.ref);
    const { type, codec } = activation.host;
    let state = record.snapshot ? codec.decode(record.snapshot.state) : type.initialState(activation.ref.id);
    for (const event of record.events) state = type.apply(state, codec.decode(event.data));
    activation.state = state;
    activation.seq = record.seq;
    activation.snapshotSeq = record.snapshot?.seq ?? 0;
    activation.lastInputOffset = record.lastInputOffset;
    activation.unsent = record.outbox;
  }

  /** Hands committed outbox messages to the transport (again, after a crash: ids are stable). */
  private async flush(activation: Activation): Promise<void> {
    if (activation.unsent.length === 0) return;
    const messages = activation.unsent;
    await this.client.send(messages.map(({ topic, key, value, headers }) => ({ topic, key, value, headers })));
    await this.options.store.markSent(
      activation.ref,
      messages.map((message) => message.id),
    );
    activation.unsent = activation.unsent.filter((message) => !messages.includes(message));
  }

  /**
   * Hands a committed turn's outbox to the transport. The input that produced it is committed,
   * and the actor may hear nothing more, so a failed send is tried again after a pause, until it
   * goes out or the partition moves (its next owner sends it).
   */
  private async flushCommitted(activation: Activation, attempt = 1): Promise<void> {
    try {
      await this.flush(activation);
    } catch (error) {
      this.options.onError(toError(error));
      const again = setTimeout(() => void this.resend(activation, attempt + 1), retryDelay(this.options.retry, attempt));
      again.unref();
    }
  }

  /**
   * Tries a failed outbox send again, unless the actor left this node or a delivery sent it.
   * One running beside a delivery's own send at most sends a message twice, under one id.
   */
  private async resend(activation: Activation, attempt: number): Promise<void> {
    const current = this.activations.get(activationKey(activation.host.type, activation.ref.id)) === activation;
    if (this.stopped || !current || activation.unsent.length === 0) return;
    await this.flushCommitted(activation, attempt);
  }

  private passivateIdle(): void {
    const idleSince = this.options.clock() - this.options.passivateAfterMs;
    this.local.sweep();
    for (const [key, activation] of this.activations) {
      if (!activation.busy && activation.unsent.length === 0 && activation.lastUsed <= idleSince) this.activations.delete(key);
    }
  }

  private ensureOpen(): void {
    if (this.stopped) throw new RuntimeError(RuntimeErrorCode.Closed, 'the actor system is stopped');
  }
}

function activationKey(type: AnyActorType, id: string): string {
  return `${type.type}/${id}`;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

function isDuplicate(error: Error): boolean {
  return error instanceof RuntimeError && error.code === RuntimeErrorCode.DuplicateInput;
}

/**
 * Runs `run` over the items, at most `limit` at a time. Once a run fails no more start, and the
 * call rejects with the first failure after the runs under way ended: none is left running.
 */
async function forEachLimited<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next] as T;
      next += 1;
      try {
        await run(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(workers);
  if (failure) throw failure.error;
}

function validate(options: ActorSystemOptions): void {
  const positiveInteger = (key: string, value: number) => {
    if (!Number.isInteger(value) || value <= 0) {
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `ActorSystem option ${key} must be a positive integer, got ${value}`);
    }
  };
  positiveInteger('partitions', options.partitions);
  positiveInteger('passivateAfterMs', options.passivateAfterMs);
  positiveInteger('maxInFlightPerPartition', options.maxInFlightPerPartition);
  positiveInteger('askTimeoutMs', options.askTimeoutMs);
  positiveInteger('retry.maxAttempts', options.retry.maxAttempts);
  if (options.actors.length === 0)
    throw new RuntimeError(RuntimeErrorCode.InvalidOptions, 'ActorSystem option actors must name at least one actor type');
  const names = options.actors.map((type) => type.type);
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined)
    throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `ActorSystem option actors names type "${duplicate}" twice`);
}
