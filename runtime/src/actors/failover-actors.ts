/**
 * The actors of the failover tests: counters that journal each number they are given and
 * forward it to a sink, and sinks that journal what counters forwarded. Counting both after
 * faults proves exactly-once application and de-duplicated output.
 */
import { defineActor } from './actor.js';

export type CounterMessage = { type: 'add'; n: number };
export type SinkMessage = { type: 'got'; from: string; n: number };

/** Sinks a counter forwards to, by number. */
export const SINKS = 4;

/** No snapshots: the tests read whole journals back to count every event. */
const NEVER = Number.MAX_SAFE_INTEGER;

export function failoverActors(prefix: string, onTurn: (counterId: string) => void = () => {}) {
  const sink = defineActor<number, SinkMessage, { from: string; n: number }, void>({
    type: `${prefix}-sink`,
    snapshotEvery: NEVER,
    initialState: () => 0,
    receive(ctx, message) {
      ctx.emit({ from: message.from, n: message.n });
    },
    apply: (received) => received + 1,
  });
  const counter = defineActor<number, CounterMessage, { n: number }, void>({
    type: `${prefix}-counter`,
    snapshotEvery: NEVER,
    initialState: () => 0,
    receive(ctx, message) {
      onTurn(ctx.self.id);
      ctx.emit({ n: message.n });
      ctx.tell(sink, `sink-${message.n % SINKS}`, { type: 'got', from: ctx.self.id, n: message.n });
    },
    apply: (count) => count + 1,
  });
  return { counter, sink };
}
