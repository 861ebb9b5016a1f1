/**
 * The runtime conformance suite: actor guarantees that must hold on every Transport × Store
 * pair — embedded log with SQLite, and Kafka with Cassandra. Crash tests kill real child
 * processes rather than calling a method that pretends to crash.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { DeadLetter } from '@troupe/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { openStore, type StoreConfig } from '../store/open.js';
import type { Store } from '../store/store.js';
import { startChild } from '../testing/child-process.js';
import { wrapTransport } from '../testing/wrapped-transport.js';
import { eventually } from '../testing/eventually.js';
import { openTransport, type TransportConfig } from '../transport/open.js';
import { partitionFor } from '../transport/partitioner.js';
import type { Transport } from '../transport/transport.js';
import { actorTopic, defineActor } from './actor.js';
import { ActorClient, MAX_MESSAGE_BYTES, REPLY_TOPIC } from './actor-client.js';
import { ActorSystem, DEAD_LETTER_TOPIC, type ActorSystemOptions } from './actor-system.js';
import { ledgerActor, type LedgerMessage, type LedgerState } from './conformance-actors.js';

export interface RuntimeFixture {
  transport: TransportConfig;
  store: StoreConfig;
  cleanup(): Promise<void>;
}

const PARTITIONS = 4;
const CHILD = fileURLToPath(new URL('./conformance-child.ts', import.meta.url));

/** Registers the suite against the Transport and Store a fixture names. */
export function runtimeConformance(name: string, setup: () => Promise<RuntimeFixture>): void {
  describe(`actor runtime on ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** A test's Transport and Store, and a consumer group of its own shared by its nodes. */
    async function fixture(): Promise<RuntimeFixture & { groupId: string }> {
      const created = await setup();
      cleanups.push(() => created.cleanup());
      return { ...created, groupId: uniqueType('runtime') };
    }

    /** A node of the test's group; `wrap` puts a fault between it and its store or transport. */
    async function node(
      plan: RuntimeFixture & { groupId: string },
      actors: ActorSystemOptions['actors'],
      options: Partial<ActorSystemOptions> = {},
      wrap: { store?: (store: Store) => Store; transport?: (transport: Transport) => Transport } = {},
    ): Promise<{ system: ActorSystem; transport: Transport; store: Store; stop(): Promise<void> }> {
      const transport = await openTransport(plan.transport);
      const store = await openStore(plan.store);
      const system = await ActorSystem.start({
        transport: wrap.transport?.(transport) ?? transport,
        store: wrap.store?.(store) ?? store,
        actors,
        partitions: PARTITIONS,
        groupId: plan.groupId,
        onError: () => {},
        ...options,
      });
      let stopped = false;
      const stop = async () => {
        if (stopped) return;
        stopped = true;
        await system.stop();
        await transport.close();
        await store.close();
      };
      cleanups.push(stop);
      return { system, transport, store, stop };
    }

    it('delivers each actor its messages in the order they were sent, one turn at a time', async () => {
      const ledger = ledgerActor(uniqueType('order'));
      const { system } = await node(await fixture(), [ledger]);
      const actors = ['a', 'b', 'c', 'd', 'e'];
      for (let n = 0; n < 100; n += 1) {
        await Promise.all(actors.map((id) => system.tell(ledger, id, { type: 'add', n })));
      }
      for (const id of actors) {
        await eventually(async () => {
          const state = (await system.ask(ledger, id, { type: 'get' })) as LedgerState;
          expect(state.entries).toEqual(Array.from({ length: 100 }, (_, n) => n));
        });
      }
    });

    it('answers an ask with what the handler returned, and times out when it takes too long', async () => {
      const ledger = ledgerActor(uniqueType('ask'));
      const { system } = await node(await fixture(), [ledger]);
      expect(await system.ask(ledger, 'x', { type: 'add', n: 1 })).toBe(1);
      expect(await system.ask(ledger, 'x', { type: 'add', n: 2 })).toBe(2);
      const late = system.ask(ledger, 'y', { type: 'sleep', ms: 1_000 }, { timeoutMs: 50 });
      await expect(late).rejects.toMatchObject({ code: RuntimeErrorCode.AskTimeout });
    });

    it('applies a message sent twice with the same id once', async () => {
      const ledger = ledgerActor(uniqueType('idem'));
      const { system } = await node(await fixture(), [ledger]);
      await system.tell(ledger, 'x', { type: 'add', n: 7 }, { id: 'order-7' });
      await system.tell(ledger, 'x', { type: 'add', n: 7 }, { id: 'order-7' });
      await system.tell(ledger, 'x', { type: 'add', n: 8 }, { id: 'order-8' });
      await eventually(async () => {
        expect(((await system.ask(ledger, 'x', { type: 'get' })) as LedgerState).entries).toEqual([7, 8]);
      });
    });

    it('applies every message exactly once when a node is killed in the middle of a turn', async () => {
      const plan = await fixture();
      const type = uniqueType('crash');
      const ledger = ledgerActor(type);
      // Messages go into the log before any node consumes them; the child blocks inside the
      // turn of 7, after committing 1..6 and before committing 7.
      await send(
        plan,
        ledger,
        'victim',
        Array.from({ length: 10 }, (_, i) => ({ type: 'add', n: i + 1 }) as const),
      );

      const child = startChild(CHILD, {
        transport: plan.transport,
        store: plan.store,
        groupId: plan.groupId,
        type,
        partitions: PARTITIONS,
        blockAt: 7,
      });
      await child.waitFor('MID-TURN');
      await child.kill();

      const { system } = await node(plan, [ledger]);
      await eventually(async () => {
        const state = (await system.ask(ledger, 'victim', { type: 'get' })) as LedgerState;
        expect(state.entries).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      });
    });

    it('applies each message of a pack once when its batch stopped partway through it', async () => {
      const plan = await fixture();
      const type = uniqueType('pack');
      // The turn of 2 fails once, so 1 is committed alone and 2 after its retry; the commit of 3
      // finds the store away, so the pack comes again with 1 and 2 applied and 3 not.
      let failedAdd = false;
      const ledger = ledgerActor(type, {
        hooks: {
          beforeAdd: async (n) => {
            if (n !== 2 || failedAdd) return;
            failedAdd = true;
            throw new Error('the first turn of 2 fails on purpose');
          },
        },
      });
      let storeAway = false;
      const awayOnceForThree = (store: Store) =>
        replacing(store, 'commitTurns', (real) => async (writes) => {
          if (!storeAway && writes.some((write) => write.input?.id === 'third')) {
            storeAway = true;
            throw new RuntimeError(RuntimeErrorCode.Unavailable, 'the store is away on purpose', { retriable: true });
          }
          await real.commitTurns(writes);
        });
      const transport = await openTransport(plan.transport);
      try {
        const topic = actorTopic(type);
        await transport.createTopic(topic, PARTITIONS);
        const client = new ActorClient(transport);
        // Told in one turn of the event loop, the three travel as one record.
        await Promise.all(
          (['first', 'second', 'third'] as const).map((id, i) => client.tell(ledger, 'packed', { type: 'add', n: i + 1 }, { id })),
        );
        await client.close();
        expect(await transport.endOffset(topic, partitionFor('packed', PARTITIONS))).toBe(1);
      } finally {
        await transport.close();
      }

      const { system } = await node(
        plan,
        [ledger],
        { retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 } },
        { store: awayOnceForThree },
      );
      await eventually(async () => {
        expect(((await system.ask(ledger, 'packed', { type: 'get' })) as LedgerState).entries).toEqual([1, 2, 3]);
      });
      expect([failedAdd, storeAway]).toEqual([true, true]);
    });

    it('sends what a committed turn told other actors, once, when the node died before sending it', async () => {
      const plan = await fixture();
      const type = uniqueType('outbox');
      const ledger = ledgerActor(type);
      // One message only: nothing but its own redelivery brings the forwarder back to send it.
      await send(plan, ledger, 'forwarder', [{ type: 'forward', to: 'sink', n: 1 }]);

      const child = startChild(CHILD, {
        transport: plan.transport,
        store: plan.store,
        groupId: plan.groupId,
        type,
        partitions: PARTITIONS,
        holdSendsTo: 'sink',
      });
      await child.waitFor('HOLDING-SEND');
      await child.kill();
      const afterCrash = await openStore(plan.store);
      expect((await afterCrash.load({ type, id: 'forwarder' })).outbox).toHaveLength(1);
      await afterCrash.close();

      const { system } = await node(plan, [ledger]);
      await eventually(async () => {
        const state = (await system.ask(ledger, 'sink', { type: 'get' })) as LedgerState;
        expect(state.entries).toEqual([1]);
      });
    });

    it('sends what a committed turn told other actors when the transport refused it at first', async () => {
      const ledger = ledgerActor(uniqueType('resend'));
      let refusals = 0;
      const refusingFirstToSink = (transport: Transport) =>
        wrapTransport(transport, {
          send: (records) => {
            if (refusals > 0 || !records.some((record) => record.key === 'sink')) return transport.send(records);
            refusals += 1;
            return Promise.reject(new RuntimeError(RuntimeErrorCode.Unavailable, 'a send refused on purpose', { retriable: true }));
          },
        });
      const { system } = await node(await fixture(), [ledger], {}, { transport: refusingFirstToSink });
      // The forwarder hears nothing more: only the node itself can send its outbox again.
      expect(await system.ask(ledger, 'forwarder', { type: 'forward', to: 'sink', n: 1 })).toBe('forwarded');
      expect(refusals).toBe(1);
      await eventually(async () => {
        expect(((await system.ask(ledger, 'sink', { type: 'get' })) as LedgerState).entries).toEqual([1]);
      });
    });

    it('answers asks once reading replies works again after a first try failed', async () => {
      const ledger = ledgerActor(uniqueType('replies'));
      let failures = 0;
      const failingFirstReplies = (transport: Transport) =>
        wrapTransport(transport, {
          subscribe: (options) => {
            if (failures > 0 || !options.topics.includes(REPLY_TOPIC)) return transport.subscribe(options);
            failures += 1;
            return Promise.reject(
              new RuntimeError(RuntimeErrorCode.Unavailable, 'a reply subscription refused on purpose', { retriable: true }),
            );
          },
        });
      const { system } = await node(await fixture(), [ledger], {}, { transport: failingFirstReplies });
      await expect(system.ask(ledger, 'x', { type: 'add', n: 1 })).rejects.toThrow(/refused on purpose/);
      expect(await system.ask(ledger, 'x', { type: 'add', n: 2 })).toBe(1);
    });

    it('answers an ask and wakes its timer when the store applied a commit it reported as a conflict', async () => {
      const ledger = ledgerActor(uniqueType('landed'));
      let conflicts = 0;
      // What a conditional write that timed out reports: it may have been applied, and here it was.
      const conflictingOnce = (store: Store) =>
        replacing(store, 'commitTurns', (real) => async (writes) => {
          await real.commitTurns(writes);
          if (conflicts > 0) return;
          conflicts += 1;
          throw new RuntimeError(RuntimeErrorCode.Conflict, 'a conditional write timed out and may or may not have been applied', {
            retriable: true,
          });
        });
      const { system } = await node(await fixture(), [ledger], {}, { store: conflictingOnce });
      expect(await system.ask(ledger, 'x', { type: 'remind', delayMs: 200 }, { timeoutMs: 5_000 })).toBe('scheduled');
      expect(conflicts).toBe(1);
      await eventually(async () => {
        expect(((await system.ask(ledger, 'x', { type: 'get' })) as LedgerState).reminders).toBe(1);
      });
    });

    it('delivers what the timers of two actors, of one name and due time, tell a third', async () => {
      const ledger = ledgerActor(uniqueType('alarm-sink'));
      const at = Date.now() + 500;
      const alarm = defineActor<null, { type: 'arm' } | { type: 'ring' }, never, string>({
        type: uniqueType('alarm'),
        initialState: () => null,
        receive(ctx, message) {
          if (message.type === 'arm') ctx.schedule('ring', { at }, { type: 'ring' });
          else ctx.tell(ledger, 'sink', { type: 'add', n: 1 });
          return message.type;
        },
        apply: (state) => state,
      });
      const { system } = await node(await fixture(), [ledger, alarm]);
      await Promise.all(['a', 'b'].map((id) => system.ask(alarm, id, { type: 'arm' })));
      await eventually(async () => {
        expect(((await system.ask(ledger, 'sink', { type: 'get' })) as LedgerState).entries).toEqual([1, 1]);
      });
    });

    it('does not fire a timer that the turn which set it cancelled', async () => {
      const ledger = ledgerActor(uniqueType('flip-sink'));
      const flip = defineActor<
        null,
        { type: 'arm'; n: number; delayMs: number; cancel: boolean } | { type: 'ring'; n: number },
        never,
        string
      >({
        type: uniqueType('flip'),
        initialState: () => null,
        receive(ctx, message) {
          if (message.type === 'ring') ctx.tell(ledger, 'sink', { type: 'add', n: message.n });
          else {
            ctx.schedule('ring', { delayMs: message.delayMs }, { type: 'ring', n: message.n });
            if (message.cancel) ctx.cancelTimer('ring');
          }
          return message.type;
        },
        apply: (state) => state,
      });
      const { system } = await node(await fixture(), [ledger, flip]);
      await system.ask(flip, 'cancelled', { type: 'arm', n: 1, delayMs: 100, cancel: true });
      await system.ask(flip, 'kept', { type: 'arm', n: 2, delayMs: 600, cancel: false });
      // Had the cancelled timer fired, its 1 would come before the kept timer's 2.
      await eventually(async () => {
        expect(((await system.ask(ledger, 'sink', { type: 'get' })) as LedgerState).entries).toEqual([2]);
      });
    });

    it('recovers state from its latest snapshot plus the journal after it', async () => {
      const plan = await fixture();
      const type = uniqueType('snap');
      const ledger = ledgerActor(type, { snapshotEvery: 10 });
      const first = await node(plan, [ledger]);
      for (let n = 1; n <= 25; n += 1) await first.system.ask(ledger, 'x', { type: 'add', n });
      const stored = await first.store.load({ type, id: 'x' });
      expect(stored.snapshot?.seq).toBe(20);
      expect(stored.events.map((event) => event.seq)).toEqual([21, 22, 23, 24, 25]);
      await first.stop();

      const second = await node(plan, [ledger]);
      const state = (await second.system.ask(ledger, 'x', { type: 'get' })) as LedgerState;
      expect(state.entries).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    });

    it('fires a durable timer after the node that scheduled it was killed', async () => {
      const plan = await fixture();
      const type = uniqueType('timer');
      const ledger = ledgerActor(type);
      await send(plan, ledger, 'sleeper', [{ type: 'remind', delayMs: 1_500 }]);

      const child = startChild(CHILD, {
        transport: plan.transport,
        store: plan.store,
        groupId: plan.groupId,
        type,
        partitions: PARTITIONS,
        waitForScheduled: 'sleeper',
      });
      await child.waitFor('SCHEDULED');
      await child.kill();

      const { system } = await node(plan, [ledger]);
      await eventually(async () => {
        const state = (await system.ask(ledger, 'sleeper', { type: 'get' })) as LedgerState;
        expect(state.reminders).toBe(1);
      }, 15_000);
    });

    it('retries a failing turn, then dead-letters the message with its error and keeps the actor usable', async () => {
      const ledger = ledgerActor(uniqueType('dead'));
      const { system, transport } = await node(await fixture(), [ledger], { retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 } });
      await expect(system.ask(ledger, 'x', { type: 'explode' })).rejects.toThrow(/refuses to explode quietly/);
      expect(await system.ask(ledger, 'x', { type: 'add', n: 1 })).toBe(1);

      const letters: DeadLetter[] = [];
      const subscription = await transport.subscribe({
        groupId: `dead-reader-${randomUUID()}`,
        topics: [DEAD_LETTER_TOPIC],
        eachBatch: async (batch) => {
          for (const record of batch.records) {
            letters.push(DeadLetter.decode(record.value));
            batch.resolveOffset(record.offset);
          }
        },
      });
      await eventually(async () => {
        const letter = letters.find((candidate) => candidate.envelope?.target?.type === ledger.type);
        expect(letter).toMatchObject({ attempts: 3, errorCode: RuntimeErrorCode.TurnFailed });
        expect(letter?.errorMessage).toMatch(/refuses to explode quietly/);
      });
      await subscription.close();
    });

    it('refuses a message too large for a broker in the turn that makes it, so the partition goes on', async () => {
      const sink = ledgerActor(uniqueType('big-sink'));
      const sender = defineActor<null, { bytes: number }, never, string>({
        type: uniqueType('big-sender'),
        initialState: () => null,
        receive(ctx, { bytes }) {
          // Padding the ledger ignores: the size is what counts.
          ctx.tell(sink, 'x', { type: 'add', n: bytes, padding: 'x'.repeat(bytes) } as LedgerMessage);
          return 'sent';
        },
        apply: (state) => state,
      });
      const { system } = await node(await fixture(), [sink, sender], { retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } });
      // Over a broker's default message.max.bytes (1,048,588), which would refuse it for good.
      await expect(system.ask(sender, 's', { bytes: 1_100_000 })).rejects.toMatchObject({
        code: RuntimeErrorCode.TooLarge,
        message: expect.stringMatching(/a message of 1,100,\d{3} bytes is over the limit of 900,000/),
      });
      await expect(
        system.tell(sink, 'x', { type: 'add', n: 0, padding: 'x'.repeat(MAX_MESSAGE_BYTES) } as LedgerMessage),
      ).rejects.toMatchObject({
        code: RuntimeErrorCode.TooLarge,
      });
      expect(await system.ask(sender, 's', { bytes: 10 })).toBe('sent');
      await eventually(async () => {
        expect(((await system.ask(sink, 'x', { type: 'get' })) as LedgerState).entries).toEqual([10]);
      });
    });

    it('passivates idle actors and brings them back with their state', async () => {
      const ledger = ledgerActor(uniqueType('passive'));
      const { system } = await node(await fixture(), [ledger], { passivateAfterMs: 50 });
      for (const id of ['p', 'q', 'r']) await system.ask(ledger, id, { type: 'add', n: 1 });
      await eventually(async () => expect(system.activeActors).toBe(0));
      expect(await system.ask(ledger, 'q', { type: 'add', n: 2 })).toBe(2);
    });

    it('owns its partitions at the epochs of its last claims when a failed claim makes it claim again', async () => {
      const ledger = ledgerActor(uniqueType('claims'));
      const topic = actorTopic(ledger.type);
      // The first claim of partition 0 fails, so the transport calls onAssigned again; the first
      // claim of partition 1 is answered late, after the second claim of it has been.
      const [failing, late] = [`${topic}/0`, `${topic}/1`];
      const claims = new Map<string, number>();
      let lateAnswered = false;
      const claimNext = async (store: Store, scope: string): Promise<number> => {
        const claim = (claims.get(scope) ?? 0) + 1;
        claims.set(scope, claim);
        if (claim === 1 && scope === failing) throw new RuntimeError(RuntimeErrorCode.Unavailable, 'a claim failing on purpose');
        const epoch = await store.claimNext(scope);
        if (claim === 1 && scope === late) {
          await new Promise((resolve) => setTimeout(resolve, 1_500));
          lateAnswered = true;
        }
        return epoch;
      };
      const withSlowClaims = (store: Store): Store => replacing(store, 'claimNext', (real) => (scope) => claimNext(real, scope));
      const { system } = await node(await fixture(), [ledger], {}, { store: withSlowClaims });
      await eventually(async () => expect(lateAnswered).toBe(true));

      const onLate = Array.from({ length: 100 }, (_, i) => `claims-${i}`).find((id) => partitionFor(id, PARTITIONS) === 1)!;
      expect(await system.ask(ledger, onLate, { type: 'add', n: 1 }, { timeoutMs: 10_000 })).toBe(1);
      expect(claims.get(late)).toBeGreaterThan(1);
    });

    it('bounds the turns in flight per partition', async () => {
      let running = 0;
      let peak = 0;
      const busy = defineActor<null, { ms: number }, never, void>({
        type: uniqueType('busy'),
        initialState: () => null,
        async receive(_ctx, message) {
          running += 1;
          peak = Math.max(peak, running);
          await new Promise((resolve) => setTimeout(resolve, message.ms));
          running -= 1;
        },
        apply: (state) => state,
      });
      const { system } = await node(await fixture(), [busy], { partitions: 1, maxInFlightPerPartition: 3 });
      await Promise.all(Array.from({ length: 24 }, (_, i) => system.ask(busy, `worker-${i}`, { ms: 20 })));
      expect(peak).toBe(3);
    });
  });
}

/** Puts messages into an actor's topic while no node consumes it. */
async function send(
  plan: RuntimeFixture,
  ledger: ReturnType<typeof ledgerActor>,
  id: string,
  messages: readonly LedgerMessage[],
): Promise<void> {
  const transport = await openTransport(plan.transport);
  try {
    await transport.createTopic(actorTopic(ledger.type), PARTITIONS);
    const client = new ActorClient(transport);
    for (const message of messages) await client.tell(ledger, id, message);
    await client.close();
  } finally {
    await transport.close();
  }
}

/** `store` with one of its methods replaced by what `replacement` makes of the real store. */
function replacing<K extends keyof Store>(store: Store, key: K, replacement: (real: Store) => Store[K]): Store {
  const replaced = replacement(store);
  return new Proxy(store, {
    get(target, name) {
      if (name === key) return replaced;
      const value: unknown = Reflect.get(target, name, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function uniqueType(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
