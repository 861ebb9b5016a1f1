/**
 * The child process of the embedded store's crash test: commits turns to one actor in a tight
 * loop and prints each committed seq on its own line, until the test kills it with SIGKILL.
 * Stdout to a pipe is synchronous on Linux, so a printed seq was committed before it was seen.
 *
 * Usage: node --import tsx crash-child.ts '{"path":…,"actor":{…},"shard":…,"eventsPerTurn":3}'
 */
import type { ActorRef } from '../store.js';
import { EmbeddedStore } from './embedded-store.js';

/** The JSON argument the crash test passes. */
export interface CrashChildArgs {
  path: string;
  actor: ActorRef;
  shard: string;
  eventsPerTurn: number;
}

const args = JSON.parse(process.argv[2] ?? '') as CrashChildArgs;
const store = await EmbeddedStore.open({ path: args.path });
const text = new TextEncoder();

// Every turn writes events, an input id and offset, a timer and an outbox message, so the test
// can tell a partly written turn from a whole one.
for (let turn = 1, seq = 0; ; turn += 1) {
  const events = Array.from({ length: args.eventsPerTurn }, (_, index) => text.encode(`turn ${turn} event ${index}`));
  await store.commitTurn({
    actor: args.actor,
    expectedSeq: seq,
    events,
    input: { id: `input-${turn}`, offset: turn },
    timersSet: [{ actor: args.actor, name: 'latest', dueAt: turn, shard: args.shard, message: text.encode(`${turn}`) }],
    outbox: [{ id: `out-${turn}`, topic: 'crash', key: args.actor.id, value: text.encode(`${turn}`), headers: {} }],
  });
  seq += events.length;
  process.stdout.write(`${seq}\n`);
}
