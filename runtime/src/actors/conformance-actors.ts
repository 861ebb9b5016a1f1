/**
 * The actor type the runtime conformance suite drives, shared by the test process and the
 * child processes it kills. Each test names its own type, so tests never share a topic.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defineActor } from './actor.js';

export type LedgerMessage =
  | { type: 'add'; n: number }
  | { type: 'get' }
  | { type: 'explode' }
  | { type: 'sleep'; ms: number }
  | { type: 'remind'; delayMs: number }
  | { type: 'reminder' }
  | { type: 'forward'; to: string; n: number };

export type LedgerEvent = { added: number } | { scheduled: true } | { reminded: true };

export interface LedgerState {
  entries: number[];
  scheduled: boolean;
  reminders: number;
}

export interface LedgerHooks {
  /** Runs inside the turn of `add`, before its event is emitted (a child blocks here to be killed mid-turn). */
  beforeAdd?(n: number): Promise<void>;
}

export function ledgerActor(type: string, options: { hooks?: LedgerHooks; snapshotEvery?: number } = {}) {
  const ledger = defineActor<LedgerState, LedgerMessage, LedgerEvent, unknown>({
    type,
    snapshotEvery: options.snapshotEvery,
    initialState: () => ({ entries: [], scheduled: false, reminders: 0 }),
    async receive(ctx, message) {
      switch (message.type) {
        case 'add':
          await options.hooks?.beforeAdd?.(message.n);
          ctx.emit({ added: message.n });
          return ctx.state.entries.length;
        case 'get':
          return ctx.state;
        case 'explode':
          throw new Error(`ledger ${ctx.self.id} refuses to explode quietly`);
        case 'sleep':
          await sleep(message.ms);
          return 'slept';
        case 'remind':
          ctx.schedule('reminder', { delayMs: message.delayMs }, { type: 'reminder' });
          ctx.emit({ scheduled: true });
          return 'scheduled';
        case 'reminder':
          ctx.emit({ reminded: true });
          return 'reminded';
        case 'forward':
          ctx.tell(ledger, message.to, { type: 'add', n: message.n });
          return 'forwarded';
      }
    },
    apply(state, event) {
      if ('added' in event) return { ...state, entries: [...state.entries, event.added] };
      if ('scheduled' in event) return { ...state, scheduled: true };
      return { ...state, reminders: state.reminders + 1 };
    },
  });
  return ledger;
}
