/**
 * Consumer groups of the embedded log. The members of a group (all in this process) split its
 * partitions, and every join or leave is an eager rebalance: revoke everything, bump and
 * persist the epoch, assign again. The committed offsets and the epoch live in
 * `<dir>/groups/<groupId>.json`, replaced atomically, so both survive restarts.
 */
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { RuntimeError, RuntimeErrorCode, toError } from '../../errors.js';
import type { PartitionAssignment, SubscribeOptions, Subscription } from '../transport.js';
import { replaceFile } from './files.js';
import { consumePartition, pause } from './partition-consumer.js';
import type { PartitionLog } from './partition-log.js';

/** What a group needs from the transport that holds it. */
export interface GroupHost {
  log(topic: string, partition: number): PartitionLog;
  partitionCount(topic: string): number;
  durable: boolean;
  retryDelayMs: number;
  report(message: string, error?: Error): void;
}

/** Subscribe options after validation, with the transport's defaults filled in. */
export type MemberOptions = SubscribeOptions & Required<Pick<SubscribeOptions, 'start' | 'maxBatchSize'>>;

interface GroupFile {
  epoch: number;
  /** topic → partition → the next offset the group reads. */
  offsets: Record<string, Record<string, number>>;
}

interface Start {
  topic: string;
  partition: number;
  from: number;
}

/** One consumer group's members, assignment, committed offsets and epoch. */
export class ConsumerGroup {
  readonly #groupId: string;
  readonly #path: string;
  readonly #host: GroupHost;
  #epoch: number;
  readonly #offsets = new Map<string, Map<number, number>>();
  #members: readonly Member[] = [];
  readonly #closing = new AbortController();
  #membership: Promise<void> = Promise.resolve();
  #queuedWrite: Promise<void> | undefined;
  #lastWrite: Promise<void> = Promise.resolve();

  private constructor(groupId: string, path: string, host: GroupHost, file: GroupFile) {
    this.#groupId = groupId;
    this.#path = path;
    this.#host = host;
    this.#epoch = file.epoch;
    for (const [topic, partitions] of Object.entries(file.offsets)) {
      this.#offsets.set(topic, new Map(Object.entries(partitions).map(([partition, offset]) => [Number(partition), offset])));
    }
  }

  /** Reads the group's file, or starts a group with nothing committed at epoch 0. */
  static async load(groupId: string, path: string, host: GroupHost): Promise<ConsumerGroup> {
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    return new ConsumerGroup(groupId, path, host, text === undefined ? { epoch: 0, offsets: {} } : parseGroupFile(text, path));
  }

  committed(topic: string, partition: number): number | undefined {
    return this.#offsets.get(topic)?.get(partition);
  }

  /** Adds a member; resolves once the rebalance that assigns it partitions is done. */
  async join(options: MemberOptions): Promise<Subscription> {
    if (this.#closing.signal.aborted) throw new RuntimeError(RuntimeErrorCode.Closed, `consumer group ${this.#groupId} is closed`);
    const member = new Member(this.#groupId, options, this.#host, (topic, partition, offset) => this.#commit(topic, partition, offset));
    await this.#rebalance(() => {
      this.#members = [...this.#members, member];
    });
    let leaving: Promise<void> | undefined;
    return {
      close: () =>
        (leaving ??= this.#rebalance(() => {
          this.#members = this.#members.filter((other) => other !== member);
        })),
    };
  }

  /** Revokes every member's partitions (finishing their batches and commits) and removes them. */
  close(): Promise<void> {
    this.#closing.abort();
    return this.#rebalance(() => {
      this.#members = [];
    });
  }

  #rebalance(change: () => void): Promise<void> {
    const run = this.#membership.then(async () => {
      await Promise.all(this.#members.map((member) => member.revoke()));
      change();
      if (this.#members.length === 0) return;
      this.#epoch += 1;
      const starts = new Map<Member, Start[]>();
      for (const [member, partitions] of assign(this.#members, this.#host.partitionCount)) {
        starts.set(
          member,
          partitions.map(({ topic, partition }) => ({ topic, partition, from: this.#startOffset(topic, partition, member.options.start) })),
        );
      }
      await this.#persistEpoch();
      for (const [member, memberStarts] of starts) member.activate(this.#epoch, memberStarts);
    });
    // Later membership changes queue behind this one whether it fails or not; its caller gets the error.
    this.#membership = run.catch(() => undefined);
    return run;
  }

  #startOffset(topic: string, partition: number, start: 'earliest' | 'latest'): number {
    const committed = this.committed(topic, partition);
    if (committed !== undefined) return committed;
    if (start === 'earliest') return 0;
    // Committed now (persisted with the epoch), so records appended from here on reach the
    // group even if this member leaves before it consumes any.
    const end = this.#host.log(topic, partition).endOffset;
    this.#setOffset(topic, partition, end);
    return end;
  }

  // An epoch a restart could hand out again would let a stale owner pass a store's fence, so no
  // partition is assigned until the new epoch is on disk; a failing disk is retried, not skipped.
  async #persistEpoch(): Promise<void> {
    for (;;) {
      try {
        return await this.#persist();
      } catch (error) {
        if (this.#closing.signal.aborted) throw error;
        this.#host.report(
          `consumer group ${this.#groupId}: cannot persist epoch ${this.#epoch}, so its partitions stay unassigned; retrying in ${this.#host.retryDelayMs} ms`,
          toError(error),
        );
        await pause(this.#host.retryDelayMs, this.#closing.signal);
      }
    }
  }

  #commit(topic: string, partition: number, offset: number): Promise<void> {
    this.#setOffset(topic, partition, offset);
    return this.#persist();
  }

  #setOffset(topic: string, partition: number, offset: number): void {
    let partitions = this.#offsets.get(topic);
    if (!partitions) this.#offsets.set(topic, (partitions = new Map()));
    // Only forward: a late commit from an older position must not undo a newer one.
    if (offset > (partitions.get(partition) ?? -1)) partitions.set(partition, offset);
  }

  /** Writes the file; callers arriving before a queued write starts share it, since it will carry their change. */
  #persist(): Promise<void> {
    if (!this.#queuedWrite) {
      // The previous write's failure went to its own callers; this write replaces its content anyway.
      const write = this.#lastWrite
        .catch(() => undefined)
        .then(() => {
          this.#queuedWrite = undefined;
          return replaceFile(this.#path, this.#serialize(), this.#host.durable);
        });
      this.#queuedWrite = write;
      this.#lastWrite = write;
    }
    return this.#queuedWrite;
  }

  #serialize(): string {
    const offsets = Object.fromEntries([...this.#offsets].map(([topic, partitions]) => [topic, Object.fromEntries(partitions)]));
    return `${JSON.stringify({ epoch: this.#epoch, offsets } satisfies GroupFile)}\n`;
  }
}

/** A subscription's place in its group: the partitions it holds now and their delivery loops. */
class Member {
  #active: { assignments: PartitionAssignment[]; controller: AbortController; running: Promise<boolean> } | undefined;

  constructor(
    private readonly groupId: string,
    readonly options: MemberOptions,
    private readonly host: GroupHost,
    private readonly commit: (topic: string, partition: number, offset: number) => Promise<void>,
  ) {}

  /** Announces the partitions with onAssigned, then delivers them until revoked. */
  activate(epoch: number, starts: readonly Start[]): void {
    if (starts.length === 0) return;
    const controller = new AbortController();
    // Every partition's consumer waits on this one signal while it is caught up.
    setMaxListeners(0, controller.signal);
    const assignments = starts.map(({ topic, partition }) => ({ topic, partition, epoch }));
    this.#active = { assignments, controller, running: this.#run(assignments, starts, controller.signal) };
  }

  /** Stops delivery, waits for in-flight batches and their commits, then calls onRevoked. */
  async revoke(): Promise<void> {
    const active = this.#active;
    if (!active) return;
    this.#active = undefined;
    active.controller.abort();
    const announced = await active.running;
    if (!announced || !this.options.onRevoked) return;
    try {
      await this.options.onRevoked(active.assignments);
    } catch (error) {
      this.host.report(`consumer group ${this.groupId}: onRevoked threw; the partitions move on regardless`, toError(error));
    }
  }

  /** Resolves true when onAssigned succeeded (so onRevoked is owed), false when revoked before. */
  async #run(assignments: readonly PartitionAssignment[], starts: readonly Start[], signal: AbortSignal): Promise<boolean> {
    if (!(await this.#announce(assignments, signal))) return false;
    await Promise.all(
      starts.map(({ topic, partition, from }, i) =>
        consumePartition({
          log: this.host.log(topic, partition),
          assignment: assignments[i]!,
          signal,
          from,
          maxBatchSize: this.options.maxBatchSize,
          retryDelayMs: this.host.retryDelayMs,
          eachBatch: (batch) => this.options.eachBatch(batch),
          commit: (offset) => this.commit(topic, partition, offset),
          report: this.host.report,
        }),
      ),
    );
    return true;
  }

  // A member whose onAssigned failed must not consume (its fence or state may not be ready), so
  // the call is retried until it succeeds or the partitions are revoked.
  async #announce(assignments: readonly PartitionAssignment[], signal: AbortSignal): Promise<boolean> {
    const { onAssigned } = this.options;
    if (!onAssigned) return true;
    for (;;) {
      try {
        await onAssigned.call(this.options, assignments);
        return true;
      } catch (error) {
        this.host.report(`consumer group ${this.groupId}: onAssigned threw; retrying in ${this.host.retryDelayMs} ms`, toError(error));
        await pause(this.host.retryDelayMs, signal);
        if (signal.aborted) return false;
      }
    }
  }
}

/** Each topic's partitions go, one by one, to its subscriber holding the fewest so far (ties: earliest joined). */
function assign(
  members: readonly Member[],
  partitionCount: (topic: string) => number,
): Map<Member, { topic: string; partition: number }[]> {
  const plan = new Map(members.map((member) => [member, [] as { topic: string; partition: number }[]]));
  const topics = [...new Set(members.flatMap((member) => member.options.topics))].sort();
  for (const topic of topics) {
    const subscribers = members.filter((member) => member.options.topics.includes(topic));
    for (let partition = 0; partition < partitionCount(topic); partition++) {
      const owner = subscribers.reduce((best, member) => (plan.get(member)!.length < plan.get(best)!.length ? member : best));
      plan.get(owner)!.push({ topic, partition });
    }
  }
  return plan;
}

function parseGroupFile(text: string, path: string): GroupFile {
  const corrupt = (detail: string, cause?: unknown): RuntimeError =>
    new RuntimeError(RuntimeErrorCode.Corrupt, `consumer group file ${path}: ${detail}`, { cause });
  let file: unknown;
  try {
    file = JSON.parse(text);
  } catch (error) {
    throw corrupt('not JSON', error);
  }
  const { epoch, offsets } = (file ?? {}) as Partial<GroupFile>;
  if (!isOffset(epoch)) throw corrupt('`epoch` is not a non-negative integer');
  if (typeof offsets !== 'object' || offsets === null) throw corrupt('`offsets` is not an object');
  for (const [topic, partitions] of Object.entries(offsets)) {
    if (typeof partitions !== 'object' || partitions === null || !Object.values(partitions).every(isOffset)) {
      throw corrupt(`\`offsets.${topic}\` is not a map of partitions to offsets`);
    }
  }
  return { epoch, offsets };
}

function isOffset(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
