import { Envelope } from '@troupe/proto';
import type { Store } from '../store/store.js';
import type { Transport } from '../transport/transport.js';
import { actorTopic } from './actor.js';

/** Timers read per round; a full round means more may be due, so the next starts at once. */
const ROUND = 100;
/** The longest sleep between rounds, a bound on how late a timer can be after a clock jump or a failed round. */
const MAX_SLEEP_MS = 5_000;

/**
 * Fires the durable timers of the shards this node owns: each due timer becomes a message to
 * its actor (with an id derived from the timer, so a re-fire after a crash is dropped as a
 * duplicate), and is deleted once the message is in the log.
 */
export class TimerService {
  private readonly shards = new Set<string>();
  private timeout: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly transport: Transport,
    private readonly clock: () => number,
    private readonly onError: (error: unknown) => void,
  ) {}

  own(shards: readonly string[]): void {
    for (const shard of shards) this.shards.add(shard);
    this.wake();
  }

  disown(shards: readonly string[]): void {
    for (const shard of shards) this.shards.delete(shard);
  }

  /** Re-plans after a turn set a timer that may be due sooner than the one waited for. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timeout);
    this.running = this.round()
      .catch((error: unknown) => {
        this.onError(error);
        this.sleep(MAX_SLEEP_MS);
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timeout);
    await this.running;
  }

  private async round(): Promise<void> {
    const shards = [...this.shards];
    if (shards.length === 0) return;
    const due = await this.store.dueTimers(shards, this.clock(), ROUND);
    if (due.length > 0) {
      await this.transport.send(
        due.map((timer) => ({
          topic: actorTopic(timer.actor.type),
          key: timer.actor.id,
          value: Envelope.encode({
            // Unique across actors: what the timer's turn tells others derives its ids from this one.
            id: `timer:${timer.actor.type}/${timer.actor.id}/${timer.name}@${timer.dueAt}`,
            target: timer.actor,
            type: 'timer',
            payload: Buffer.from(timer.message),
            attempt: 1,
            causationId: '',
            correlationId: '',
            createdAt: this.clock(),
          }).finish(),
        })),
      );
      for (const timer of due) await this.store.deleteTimer(timer.actor, timer.name, timer.dueAt);
    }
    if (due.length === ROUND) {
      this.again = true;
      return;
    }
    // With none known, the turn that sets the next timer wakes the service.
    const next = await this.store.nextTimerDue(shards);
    if (next !== undefined) this.sleep(Math.max(0, Math.min(MAX_SLEEP_MS, next - this.clock())));
  }

  private sleep(ms: number): void {
    if (this.stopped) return;
    this.timeout = setTimeout(() => this.wake(), ms);
    this.timeout.unref();
  }
}
