/**
 * One subscription's membership in a Kafka consumer group, on its own kafkajs consumer: turns
 * kafkajs's group events into the contract's onAssigned/onRevoked with epochs, and hands batches
 * to partition-consumer.ts once their assignment has been announced.
 *
 * Generations. kafkajs's assignor is eager: a rebalance revokes every partition of every member
 * and the rejoin starts a new group generation. So an assignment here is one generation's
 * partitions, revoked as a whole and announced anew with the generation id as its epoch. The
 * GROUP_JOIN event of kafkajs 2.2.4 carries the member's partitions but not the generation id;
 * the HEARTBEAT event does, so a generation's epoch is the one its first heartbeat reports.
 * Batches waiting for their announcement heartbeat to bring that moment forward.
 *
 * Revocation. A rebalance shows as a heartbeat answered with REBALANCE_IN_PROGRESS (or with the
 * news that the member was dropped). While batches run, the heartbeats are this module's (the
 * handler's own and a timer's), so it notices first: it aborts the generation's signal, the
 * handlers finish or abandon their work, each commits what it resolved (the coordinator accepts
 * the current generation's commits until the member rejoins), and onRevoked runs once the last
 * has ended. The batch handlers then wait for onRevoked before returning to kafkajs, which
 * rejoins only after every batch handler returned: the partitions move after onRevoked. Between
 * batches kafkajs notices by itself and rejoins at once (the REBALANCING event); nothing is in
 * flight then, and onRevoked runs alongside the JoinGroup request. Either way, no batch of the
 * next generation is delivered before the previous generation's onRevoked and its own
 * onAssigned are done. A rejoin that kafkajs gives up on leaves it fetching in the membership it
 * kept; once a heartbeat confirms that membership, its partitions are announced again.
 *
 * Crashes. kafkajs restarts its consumer after most failures, but takes a few for fatal — a group
 * coordinator it cannot find while a broker shuts down — and then leaves the group for good. The
 * subscription still stands, so the member joins again itself, backing off while that fails.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import type { Admin, Consumer, EachBatchPayload, IMemberAssignment, Kafka } from 'kafkajs';

import { toError } from '../../errors.js';
import type { PartitionAssignment, SubscribeOptions } from '../transport.js';
import { isMembershipLost, toTransportError } from './kafka-error.js';
import { deliverBatch } from './partition-consumer.js';
import { fromMessage } from './record-codec.js';

/** Subscribe options after validation, with the transport's defaults filled in. */
export type MemberOptions = SubscribeOptions & Required<Pick<SubscribeOptions, 'start' | 'maxBatchSize'>>;

/** How important a report is; the transport's `logLevel` decides which reach its `log`. */
export type ReportLevel = 'error' | 'warn' | 'info';

/** What a member needs from the transport that holds it. */
export interface MemberHost {
  kafka: Kafka;
  /** Reads committed and end offsets. */
  admin: Admin;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  heartbeatIntervalMs: number;
  maxWaitTimeMs: number;
  partitionsConsumedConcurrently: number;
  retryDelayMs: number;
  report(level: ReportLevel, message: string, error?: Error): void;
}

/**
 * kafkajs sends a heartbeat only once `heartbeatIntervalMs` has passed since its last one, so
 * asking this often sends it about as soon as that allows.
 */
const ANNOUNCE_HEARTBEAT_MS = 100;

/** The longest a member waits between its attempts to join again after kafkajs gave up on it. */
const MAX_REJOIN_DELAY_MS = 10_000;

/** A member of a Kafka consumer group for one subscription. */
export class GroupMember {
  readonly #options: MemberOptions;
  readonly #host: MemberHost;
  readonly #consumer: Consumer;
  #generation: Generation | undefined;
  /** The newest generation id taken as an epoch; a generation's epoch is never below it. */
  #lastEpoch = 0;
  /** Heartbeats the coordinator accepted, and the generation it counted this member in at the last. */
  #heartbeats = { count: 0, generationId: 0 };
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  #joined = false;
  #leaving = false;
  #left: Promise<void> | undefined;
  /** Set when kafkajs gave up on the first join (a crash it does not restart from). */
  #firstJoinFailed: Error | undefined;
  /** The next join after kafkajs gave up on the consumer, the one under way, and the wait before the one after. */
  #rejoinTimer: NodeJS.Timeout | undefined;
  #rejoining: Promise<void> = Promise.resolve();
  #rejoinDelayMs: number;

  private constructor(options: MemberOptions, host: MemberHost) {
    this.#options = options;
    this.#host = host;
    this.#rejoinDelayMs = host.retryDelayMs;
    this.#consumer = host.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: host.sessionTimeoutMs,
      rebalanceTimeout: host.rebalanceTimeoutMs,
      heartbeatInterval: host.heartbeatIntervalMs,
      maxWaitTimeInMs: host.maxWaitTimeMs,
      allowAutoTopicCreation: false,
    });
  }

  /** Joins the group; resolves once the first join completed (its partitions are announced later, as for every generation). */
  static async join(options: MemberOptions, host: MemberHost): Promise<GroupMember> {
    const member = new GroupMember(options, host);
    await member.#start();
    return member;
  }

  /** Stops delivery, lets in-flight batches end and commit, calls onRevoked, then leaves the group. */
  close(): Promise<void> {
    this.#leaving = true;
    this.#left ??= this.#leave();
    return this.#left;
  }

  async #start(): Promise<void> {
    const consumer = this.#consumer;
    const { groupId, topics, start } = this.#options;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => this.#onJoin(payload.memberAssignment));
    consumer.on(consumer.events.HEARTBEAT, ({ payload }) => this.#onHeartbeat(payload.groupGenerationId));
    consumer.on(consumer.events.REBALANCING, () => this.#revokeCurrent());
    consumer.on(consumer.events.CRASH, ({ payload }) => this.#onCrash(payload.error, payload.restart));
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [...topics], fromBeginning: start === 'earliest' });
      await this.#run();
      if (start === 'latest') await this.#pinLatest();
    } catch (error) {
      await consumer.disconnect().catch((cause: unknown) => {
        this.#host.report('warn', `consumer group ${groupId}: disconnecting after a failed join failed too`, toError(cause));
      });
      throw toTransportError(error, topics.join(','), undefined, `join consumer group ${groupId}`);
    }
    // kafkajs reports a failed first join through its crash handling, after disconnecting.
    if (this.#firstJoinFailed) throw toTransportError(this.#firstJoinFailed, topics.join(','), undefined, `join consumer group ${groupId}`);
    this.#joined = true;
  }

  /**
   * Fixes where a 'latest' start begins before `subscribe` resolves: kafkajs reads "latest" only
   * at its first fetch, a moment after the join, and a record appended in between (the reply to
   * an ask sent as soon as the client listens) would be skipped. The end of each assigned
   * partition that the group never committed is committed now, so kafkajs starts there; were its
   * first fetch quicker, it started later than that end but before `subscribe` resolved. A failure
   * leaves kafkajs's own start, as before.
   */
  async #pinLatest(): Promise<void> {
    const { groupId } = this.#options;
    const generation = this.#generation;
    if (generation === undefined || generation.partitions.length === 0) return;
    const topics = [...new Set(generation.partitions.map(({ topic }) => topic))];
    try {
      // One read of the group's commits for every topic; the ends are read per topic.
      const [committed, ends] = await Promise.all([
        this.#host.admin.fetchOffsets({ groupId, topics }),
        Promise.all(topics.map((topic) => this.#host.admin.fetchTopicOffsets(topic))),
      ]);
      const never = new Set(
        committed.flatMap(({ topic, partitions: answers }) =>
          answers.filter(({ offset }) => Number(offset) < 0).map(({ partition }) => `${topic}/${partition}`),
        ),
      );
      const pins = topics.flatMap((topic, i) =>
        ends[i]!.filter(({ partition }) => never.has(`${topic}/${partition}`) && generation.holds(topic, partition)).map(
          ({ partition, high }) => ({ topic, partition, offset: high }),
        ),
      );
      if (pins.length > 0) await this.#consumer.commitOffsets(pins);
    } catch (error) {
      this.#host.report(
        'info',
        `consumer group ${groupId}: cannot fix where 'latest' starts; kafkajs reads it at its first fetch`,
        toError(error),
      );
    }
  }

  #run(): Promise<void> {
    return this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#host.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.#onBatch(payload),
    });
  }

  #onJoin(memberAssignment: IMemberAssignment): void {
    this.#rejoinDelayMs = this.#host.retryDelayMs;
    const previous = this.#generation;
    const generation = new Generation(
      Object.entries(memberAssignment).flatMap(([topic, partitions]) => partitions.map((partition) => ({ topic, partition }))),
    );
    this.#generation = generation;
    generation.announce(this.#announce(generation, previous ? this.#revoke(previous) : Promise.resolve()));
    // A join can complete while leaving; its partitions are given up before they are announced.
    if (this.#leaving) void this.#revoke(generation);
  }

  #onHeartbeat(generationId: number): void {
    this.#heartbeats = { count: this.#heartbeats.count + 1, generationId };
    const generation = this.#generation;
    // `>=`, not `>`: a follower that rejoins a stable group (kafkajs does on stale metadata) gets
    // the same generation back, and its new announcement carries the same epoch.
    if (!generation || generation.epoch !== undefined || generation.signal.aborted || generationId < this.#lastEpoch) return;
    this.#lastEpoch = generationId;
    generation.setEpoch(generationId);
  }

  #onCrash(error: Error, restart: boolean): void {
    // kafkajs logs the crash itself, and any pause it held went with the crashed group state.
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    this.#revokeCurrent();
    if (restart) return;
    if (this.#joined) this.#rejoinLater(error);
    else this.#firstJoinFailed = error;
  }

  /** Joins again after a wait that doubles while joining fails; the consumer was disconnected by kafkajs. */
  #rejoinLater(error: Error): void {
    if (this.#leaving || this.#rejoinTimer !== undefined) return;
    const delayMs = this.#rejoinDelayMs;
    this.#rejoinDelayMs = Math.min(2 * delayMs, MAX_REJOIN_DELAY_MS);
    this.#host.report(
      'warn',
      `consumer group ${this.#options.groupId}: kafkajs stopped the consumer; joining again in ${delayMs} ms`,
      error,
    );
    this.#rejoinTimer = setTimeout(() => {
      this.#rejoinTimer = undefined;
      if (this.#leaving) return;
      // A join that kafkajs gives up on again comes back through its crash handling.
      this.#rejoining = this.#consumer
        .connect()
        .then(() => this.#run())
        .catch((failure: unknown) => this.#rejoinLater(toError(failure)));
    }, delayMs);
  }

  /** Waits for the previous generation's onRevoked, then for the epoch, then announces the partitions; false if revoked first. */
  async #announce(generation: Generation, previousRevoked: Promise<void>): Promise<boolean> {
    await previousRevoked;
    const epoch = await generation.epochKnown;
    if (epoch === undefined) return false;
    const { onAssigned } = this.#options;
    if (!onAssigned || generation.partitions.length === 0) return true;
    const assignments = generation.assignments();
    // A member whose onAssigned failed must not consume (its fence or state may not be ready), so
    // the call is retried until it succeeds or the partitions are revoked.
    while (!generation.signal.aborted) {
      try {
        await onAssigned.call(this.#options, assignments);
        return true;
      } catch (error) {
        this.#host.report(
          'warn',
          `consumer group ${this.#options.groupId}: onAssigned threw at epoch ${epoch}; retrying in ${this.#host.retryDelayMs} ms`,
          toError(error),
        );
        await pause(this.#host.retryDelayMs, generation.signal);
      }
    }
    return false;
  }

  #revokeCurrent(): void {
    if (this.#generation) void this.#revoke(this.#generation);
  }

  /** Aborts the generation; resolves once its in-flight batches ended and onRevoked (if owed) returned. Never rejects. */
  #revoke(generation: Generation): Promise<void> {
    generation.abort();
    generation.revoked ??= this.#finishRevocation(generation);
    return generation.revoked;
  }

  async #finishRevocation(generation: Generation): Promise<void> {
    await generation.drained();
    const { onRevoked } = this.#options;
    if (!(await generation.announced) || !onRevoked || generation.partitions.length === 0) return;
    try {
      await onRevoked.call(this.#options, generation.assignments());
    } catch (error) {
      this.#host.report(
        'warn',
        `consumer group ${this.#options.groupId}: onRevoked threw; the partitions move on regardless`,
        toError(error),
      );
    }
  }

  async #onBatch(payload: EachBatchPayload): Promise<void> {
    const { topic, partition, messages } = payload.batch;
    let generation = this.#generation;
    if (generation?.signal.aborted) {
      generation = await this.#stillMember(generation, payload);
      if (generation === undefined) return;
    }
    // Not delivered: kafkajs fetches the records again, from the same position, once it rejoined.
    if (!generation || !generation.holds(topic, partition)) return;
    // Returning holds kafkajs no longer: while a revocation runs, it must not rejoin yet.
    if (!(await this.#whenAnnounced(generation, payload)) || generation.signal.aborted) return this.#revoke(generation);

    generation.begin();
    let outcome = { pause: false };
    try {
      outcome = await deliverBatch(
        {
          assignment: { topic, partition, epoch: generation.epoch! },
          signal: generation.signal,
          maxBatchSize: this.#options.maxBatchSize,
          eachBatch: (batch) => this.#options.eachBatch(batch),
          payload,
          heartbeat: () => this.#heartbeat(generation, payload),
          // kafkajs skips a heartbeat asked for within heartbeatIntervalMs of its last one, so
          // asking twice as often sends one about every interval.
          heartbeatEveryMs: this.#host.heartbeatIntervalMs / 2,
          commit: (offset) => this.#commit(generation, payload, topic, partition, offset),
          retryDelayMs: this.#host.retryDelayMs,
          report: (message, error) => this.#host.report('warn', message, error),
        },
        messages.map((message) => fromMessage(topic, partition, message)),
      );
    } finally {
      generation.end();
    }
    if (generation.signal.aborted) return this.#revoke(generation);
    if (outcome.pause) this.#pauseFor(topic, partition);
  }

  /**
   * A batch of a generation this member revoked: once the revocation ended, kafkajs fetches
   * again either after rejoining (the batch is then the next generation's, which took over) or
   * without, when it said the group was rebalancing and its rejoin then failed (the coordinator
   * was still loading after a broker restart): it goes back to fetching in the membership it
   * kept. A heartbeat that succeeds after the revocation proves that membership current, and its
   * partitions are announced again as a generation of their own; until one does, or fails and
   * makes kafkajs rejoin, batches are not delivered. Resolves the generation to deliver in, if any.
   */
  async #stillMember(revoked: Generation, payload: EachBatchPayload): Promise<Generation | undefined> {
    await this.#revoke(revoked);
    const before = this.#heartbeats.count;
    await this.#heartbeat(revoked, payload);
    if (this.#generation !== revoked) return this.#generation;
    const heartbeat = this.#heartbeats;
    if (this.#leaving || heartbeat.count === before || heartbeat.generationId < this.#lastEpoch) {
      // kafkajs sends a heartbeat once per interval: the batch comes again after a pause, not at once.
      await sleep(ANNOUNCE_HEARTBEAT_MS);
      return undefined;
    }
    this.#host.report(
      'warn',
      `consumer group ${this.#options.groupId}: kafkajs kept its membership of generation ${heartbeat.generationId} after a failed rejoin; its partitions are announced again`,
    );
    const resumed = new Generation(revoked.partitions);
    this.#generation = resumed;
    this.#lastEpoch = heartbeat.generationId;
    resumed.setEpoch(heartbeat.generationId);
    resumed.announce(this.#announce(resumed, Promise.resolve()));
    return resumed;
  }

  /** Resolves whether the generation got announced, heartbeating meanwhile so its epoch arrives. */
  async #whenAnnounced(generation: Generation, payload: EachBatchPayload): Promise<boolean> {
    while (!generation.settled) {
      await this.#heartbeat(generation, payload);
      await Promise.race([generation.announced, sleep(ANNOUNCE_HEARTBEAT_MS)]);
    }
    return generation.announced;
  }

  /** kafkajs's heartbeat; when the membership is over, the generation is revoked instead of the caller failing. */
  async #heartbeat(generation: Generation, payload: EachBatchPayload): Promise<void> {
    try {
      await payload.heartbeat();
    } catch (error) {
      if (isMembershipLost(error)) {
        void this.#revoke(generation);
        return;
      }
      // kafkajs heartbeats again after the batch and rejoins or restarts the consumer if it must.
      this.#host.report('info', `consumer group ${this.#options.groupId}: a heartbeat failed; kafkajs retries it`, toError(error));
    }
  }

  async #commit(generation: Generation, payload: EachBatchPayload, topic: string, partition: number, offset: number): Promise<void> {
    // kafkajs commits with its current generation; once a newer one joined (kafkajs can rejoin
    // from one node's fetch while another node's batch runs), this batch's progress is not its to commit.
    if (this.#generation !== generation) return;
    try {
      await payload.commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: String(offset) }] }] });
    } catch (error) {
      const lost = isMembershipLost(error);
      if (lost) void this.#revoke(generation);
      this.#host.report(
        'warn',
        `${topic}[${partition}]: cannot commit offset ${offset} at epoch ${generation.epoch}; ${lost ? 'the member lost the partition, so its next owner gets those records again' : 'a later commit carries it, or the records are delivered again'}`,
        toError(error),
      );
    }
  }

  #pauseFor(topic: string, partition: number): void {
    const topicPartitions = [{ topic, partitions: [partition] }];
    this.#consumer.pause(topicPartitions);
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      try {
        this.#consumer.resume(topicPartitions);
      } catch (error) {
        // A crash dropped kafkajs's group state, and the pause with it, before its CRASH event
        // cleared this timer; the restarted consumer fetches the partition anyway.
        this.#host.report('info', `${topic}[${partition}]: nothing to resume after a consumer crash`, toError(error));
      }
    }, this.#host.retryDelayMs);
    this.#retryTimers.add(timer);
  }

  async #leave(): Promise<void> {
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    clearTimeout(this.#rejoinTimer);
    await this.#rejoining;
    if (this.#generation) await this.#revoke(this.#generation);
    try {
      await this.#consumer.disconnect();
    } catch (error) {
      throw toTransportError(error, this.#options.topics.join(','), undefined, `leave consumer group ${this.#options.groupId}`);
    }
  }
}

/** Waits `ms`, or less when the signal aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** One generation's partitions at this member: announced with its epoch, then revoked as a whole. */
class Generation {
  readonly partitions: readonly { topic: string; partition: number }[];
  /** Resolves the epoch once known, or undefined when the generation is revoked first. */
  readonly epochKnown: Promise<number | undefined>;
  /** Resolves true once onAssigned succeeded (so onRevoked is owed), false when revoked before. */
  announced: Promise<boolean> = Promise.resolve(false);
  settled = false;
  revoked: Promise<void> | undefined;
  #epoch: number | undefined;
  #resolveEpoch: (epoch: number | undefined) => void = () => undefined;
  readonly #controller = new AbortController();
  #inFlight = 0;
  #drainWaiters: (() => void)[] = [];

  constructor(partitions: readonly { topic: string; partition: number }[]) {
    this.partitions = partitions;
    this.epochKnown = new Promise((resolve) => (this.#resolveEpoch = resolve));
    this.#controller.signal.addEventListener('abort', () => this.#resolveEpoch(undefined), { once: true });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get epoch(): number | undefined {
    return this.#epoch;
  }

  holds(topic: string, partition: number): boolean {
    return this.partitions.some((held) => held.topic === topic && held.partition === partition);
  }

  setEpoch(epoch: number): void {
    this.#epoch = epoch;
    this.#resolveEpoch(epoch);
  }

  announce(announced: Promise<boolean>): void {
    this.announced = announced;
    void announced.then(() => (this.settled = true));
  }

  assignments(): PartitionAssignment[] {
    return this.partitions.map(({ topic, partition }) => ({ topic, partition, epoch: this.#epoch! }));
  }

  abort(): void {
    this.#controller.abort();
  }

  begin(): void {
    this.#inFlight += 1;
  }

  end(): void {
    this.#inFlight -= 1;
    if (this.#inFlight === 0) for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  drained(): Promise<void> {
    return this.#inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.#drainWaiters.push(resolve));
  }
}
