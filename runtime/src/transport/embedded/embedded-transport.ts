/**
 * The embedded Transport: a durable, file-backed partitioned log with consumer groups, for one
 * process (`npm start`, tests). Layout under `dir`:
 *
 *   topics/<topic>/meta.json        the partition count, written last when the topic is created
 *   topics/<topic>/<partition>.log  append-only frames (record-codec.ts); offset = record index
 *   groups/<groupId>.json           committed offsets and epoch (consumer-group.ts)
 *   LOCK                            the pid of the process that has the directory open
 */
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { RuntimeError, RuntimeErrorCode, TransportError, toError } from '../../errors.js';
import { partitionFor } from '../partitioner.js';
import { unencodable } from '../refusals.js';
import type { ProducerRecord, SubscribeOptions, Subscription, Transport } from '../transport.js';
import { ConsumerGroup, type GroupHost } from './consumer-group.js';
import { lockDirectory, replaceFile, syncDirectory, type DirectoryLock } from './files.js';
import { PartitionLog } from './partition-log.js';
import { encodeFrame } from './record-codec.js';

/** Options of {@link EmbeddedTransport.open}. */
export interface EmbeddedTransportOptions {
  /** The data directory, created when missing. Required. */
  dir: string;
  /**
   * `'always'` (default): `send` resolves only after fdatasync, so an acknowledged record
   * survives a machine crash. `'never'`: the OS writes back when it likes; a process crash
   * loses nothing, a machine crash can lose acknowledged records. Both sync on `close`.
   */
  fsync?: 'always' | 'never';
  /** The `maxBatchSize` of subscriptions that do not set one (default 500). */
  maxBatchSize?: number;
  /** The pause before records whose handler threw (or resolved none) are delivered again, in ms (default 500). */
  retryDelayMs?: number;
  /** Receives repairs of damaged files and handler failures (default: console.warn). */
  log?: (message: string, error?: Error) => void;
}

const DEFAULTS = {
  fsync: 'always',
  maxBatchSize: 500,
  retryDelayMs: 500,
  log: (message: string, error?: Error) => console.warn(`troupe embedded transport: ${message}`, ...(error ? [error] : [])),
} satisfies Required<Omit<EmbeddedTransportOptions, 'dir'>>;

type ResolvedOptions = Required<EmbeddedTransportOptions>;

/** Kafka's topic-name rule; here it also keeps names safe as directory and file names. */
const NAME_PATTERN = /^[a-zA-Z0-9._-]{1,249}$/;

interface PendingSend {
  logs: ReadonlySet<PartitionLog>;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * A Transport on local files, for one process: topics, partitions, offsets and consumer groups
 * that survive restarts. `send` group-commits: records sent while a write is under way go out
 * together in one write and one fdatasync per partition file.
 *
 * @example
 * const transport = await EmbeddedTransport.open({ dir: '.troupe/log' });
 * await transport.createTopic('troupe.commands', 4);
 * await transport.send([{ topic: 'troupe.commands', key: 'acme/storefront', value }]);
 */
export class EmbeddedTransport implements Transport {
  readonly kind = 'embedded';
  readonly #options: ResolvedOptions;
  readonly #topics = new Map<string, readonly PartitionLog[]>();
  readonly #groups = new Map<string, Promise<ConsumerGroup>>();
  readonly #host: GroupHost;
  #lock: DirectoryLock | undefined;
  #topicCreation: Promise<unknown> = Promise.resolve();
  #pending = new Map<PartitionLog, Buffer[]>();
  #pendingSends: PendingSend[] = [];
  #flushing: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Stays true while closing until the subscriptions are gone: their last batches may still send. */
  #acceptingSends = true;

  private constructor(options: EmbeddedTransportOptions) {
    this.#options = resolveOptions(options);
    const { fsync, retryDelayMs, log } = this.#options;
    this.#host = {
      log: (topic, partition) => this.#partitionLog(topic, partition),
      partitionCount: (topic) => this.#logsOf(topic).length,
      durable: fsync === 'always',
      retryDelayMs,
      report: log,
    };
  }

  /** Validates the options, locks `dir` and indexes every partition file, repairing damaged tails. */
  static async open(options: EmbeddedTransportOptions): Promise<EmbeddedTransport> {
    const transport = new EmbeddedTransport(options);
    await transport.#load();
    return transport;
  }

  async createTopic(topic: string, partitions: number): Promise<void> {
    this.#assertOpen();
    checkName('topic', topic);
    if (!Number.isInteger(partitions) || partitions < 1) {
      throw new TransportError(
        RuntimeErrorCode.InvalidArgument,
        topic,
        undefined,
        `partition count must be a positive integer, got ${partitions}`,
      );
    }
    // One creation at a time, so two calls for a new topic cannot both build it.
    const created = this.#topicCreation.then(() => this.#createTopic(topic, partitions));
    this.#topicCreation = created.catch(() => undefined);
    return created;
  }

  async partitionCount(topic: string): Promise<number> {
    this.#assertOpen();
    return this.#logsOf(topic).length;
  }

  async send(records: readonly ProducerRecord[]): Promise<void> {
    if (!this.#acceptingSends) throw this.#closedError();
    // Every record is checked and encoded before any is queued, so a bad one fails the whole send.
    const frames: [PartitionLog, Buffer][] = records.map((record) => {
      const logs = this.#logsOf(record.topic);
      const partition = record.partition ?? partitionFor(record.key, logs.length);
      const log = this.#partitionLog(record.topic, partition);
      try {
        return [log, encodeFrame({ key: record.key, headers: record.headers ?? {}, value: record.value, timestamp: Date.now() })];
      } catch (cause) {
        throw unencodable(record, partition, cause);
      }
    });
    if (frames.length === 0) return;
    await new Promise<void>((resolve, reject) => {
      for (const [log, frame] of frames) {
        const queued = this.#pending.get(log);
        if (queued) queued.push(frame);
        else this.#pending.set(log, [frame]);
      }
      this.#pendingSends.push({ logs: new Set(frames.map(([log]) => log)), resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.#assertOpen();
    checkName('groupId', options.groupId);
    if (!Array.isArray(options.topics) || options.topics.length === 0) throw invalidSubscribe('topics', 'must name at least one topic');
    // An unknown topic fails here, by name, rather than later inside a rebalance.
    for (const topic of options.topics) this.#logsOf(topic);
    if (typeof options.eachBatch !== 'function') throw invalidSubscribe('eachBatch', 'must be a function');
    const start = options.start ?? 'earliest';
    if (start !== 'earliest' && start !== 'latest')
      throw invalidSubscribe('start', `must be 'earliest' or 'latest', got ${JSON.stringify(start)}`);
    const maxBatchSize = options.maxBatchSize ?? this.#options.maxBatchSize;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1)
      throw invalidSubscribe('maxBatchSize', `must be a positive integer, got ${maxBatchSize}`);
    const group = await this.#group(options.groupId);
    return group.join({ ...options, start, maxBatchSize });
  }

  async committedOffset(groupId: string, topic: string, partition: number): Promise<number | undefined> {
    this.#assertOpen();
    checkName('groupId', groupId);
    // An unknown topic or partition is a mistake to report, not a group that committed nothing.
    this.#partitionLog(topic, partition);
    return (await this.#group(groupId)).committed(topic, partition);
  }

  async endOffset(topic: string, partition: number): Promise<number> {
    this.#assertOpen();
    return this.#partitionLog(topic, partition).endOffset;
  }

  /** Ends every subscription (in-flight batches finish and commit), flushes sends, syncs and closes the files. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #load(): Promise<void> {
    const { dir } = this.#options;
    await mkdir(join(dir, 'topics'), { recursive: true });
    await mkdir(join(dir, 'groups'), { recursive: true });
    this.#lock = await lockDirectory(dir);
    try {
      for (const entry of await readdir(join(dir, 'topics'), { withFileTypes: true })) {
        if (!entry.isDirectory()) continue;
        const partitions = await this.#readMeta(entry.name);
        // No meta.json: creation stopped half-way, before anything could be sent to the topic.
        if (partitions !== undefined) this.#topics.set(entry.name, await this.#openLogs(entry.name, partitions));
      }
    } catch (error) {
      await this.#releaseFiles();
      throw error;
    }
  }

  async #readMeta(topic: string): Promise<number | undefined> {
    const path = join(this.#options.dir, 'topics', topic, 'meta.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    let partitions: unknown;
    try {
      partitions = (JSON.parse(text) as { partitions?: unknown }).partitions;
    } catch (cause) {
      throw new TransportError(RuntimeErrorCode.Corrupt, topic, undefined, `${path} is not JSON`, { cause });
    }
    if (!Number.isInteger(partitions) || (partitions as number) < 1) {
      throw new TransportError(RuntimeErrorCode.Corrupt, topic, undefined, `${path} has no valid \`partitions\``);
    }
    return partitions as number;
  }

  #openLogs(topic: string, partitions: number): Promise<PartitionLog[]> {
    const { dir, fsync, log } = this.#options;
    return Promise.all(
      Array.from({ length: partitions }, (_, partition) =>
        PartitionLog.open({
          path: join(dir, 'topics', topic, `${partition}.log`),
          topic,
          partition,
          durable: fsync === 'always',
          report: log,
        }),
      ),
    );
  }

  async #createTopic(topic: string, partitions: number): Promise<void> {
    const existing = this.#topics.get(topic);
    if (existing) {
      if (existing.length === partitions) return;
      throw new TransportError(
        RuntimeErrorCode.InvalidArgument,
        topic,
        undefined,
        `exists with ${existing.length} partitions, not ${partitions}`,
      );
    }
    const topicsDir = join(this.#options.dir, 'topics');
    const durable = this.#options.fsync === 'always';
    await mkdir(join(topicsDir, topic), { recursive: true });
    const logs = await this.#openLogs(topic, partitions);
    try {
      if (durable) await syncDirectory(join(topicsDir, topic));
      // meta.json last: its presence is what makes the topic exist after a crash.
      await replaceFile(join(topicsDir, topic, 'meta.json'), `${JSON.stringify({ partitions })}\n`, durable);
      if (durable) await syncDirectory(topicsDir);
    } catch (error) {
      await Promise.all(logs.map((log) => log.close()));
      throw error;
    }
    this.#topics.set(topic, logs);
  }

  #logsOf(topic: string): readonly PartitionLog[] {
    const logs = this.#topics.get(topic);
    if (!logs)
      throw new TransportError(RuntimeErrorCode.InvalidArgument, topic, undefined, 'no such topic; create it with createTopic first');
    return logs;
  }

  #partitionLog(topic: string, partition: number): PartitionLog {
    const logs = this.#logsOf(topic);
    const log = Number.isInteger(partition) ? logs[partition] : undefined;
    if (!log)
      throw new TransportError(
        RuntimeErrorCode.InvalidArgument,
        topic,
        partition,
        `no such partition; the topic has partitions 0..${logs.length - 1}`,
      );
    return log;
  }

  #group(groupId: string): Promise<ConsumerGroup> {
    let group = this.#groups.get(groupId);
    if (!group) {
      group = ConsumerGroup.load(groupId, join(this.#options.dir, 'groups', `${groupId}.json`), this.#host);
      this.#groups.set(groupId, group);
      // A failed load is not cached: the next call reads the file again.
      group.catch(() => this.#groups.delete(groupId));
    }
    return group;
  }

  /** Writes what is pending, then whatever arrived meanwhile, until nothing is left. */
  async #flush(): Promise<void> {
    // Sends made in the same tick join this first write.
    await Promise.resolve();
    const durable = this.#options.fsync === 'always';
    while (this.#pending.size > 0) {
      const pending = this.#pending;
      const sends = this.#pendingSends;
      this.#pending = new Map();
      this.#pendingSends = [];
      const failures = new Map<PartitionLog, Error>();
      await Promise.all(
        [...pending].map(([log, frames]) => log.append(frames, durable).catch((error: unknown) => void failures.set(log, toError(error)))),
      );
      for (const send of sends) {
        const failure = [...send.logs].map((log) => failures.get(log)).find((error) => error !== undefined);
        if (failure) send.reject(failure);
        else send.resolve();
      }
    }
    // Cleared in the same synchronous step as the emptiness check, so no send can slip between.
    this.#flushing = undefined;
  }

  async #close(): Promise<void> {
    const groups = await Promise.allSettled(this.#groups.values());
    await Promise.all(groups.map((group) => (group.status === 'fulfilled' ? group.value.close() : undefined)));
    this.#acceptingSends = false;
    await this.#flushing;
    await this.#releaseFiles();
  }

  async #releaseFiles(): Promise<void> {
    const logs = [...this.#topics.values()].flat();
    this.#topics.clear();
    try {
      await Promise.all(logs.map((log) => log.close()));
    } finally {
      await this.#lock?.release();
      this.#lock = undefined;
    }
  }

  #assertOpen(): void {
    if (this.#closing) throw this.#closedError();
  }

  #closedError(): RuntimeError {
    return new RuntimeError(RuntimeErrorCode.Closed, `the embedded transport on ${this.#options.dir} is closed`);
  }
}

function resolveOptions(options: EmbeddedTransportOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', 'must be an object');
  for (const key of Object.keys(options)) {
    if (key !== 'dir' && !(key in DEFAULTS)) throw invalidOption(key, 'is not an option of EmbeddedTransport');
  }
  // Explicit undefineds (e.g. from an optional config field) mean "the default", not "unset".
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<EmbeddedTransportOptions>;
  const resolved: ResolvedOptions = { ...DEFAULTS, dir: '', ...given };
  if (typeof resolved.dir !== 'string' || resolved.dir === '') throw invalidOption('dir', 'is required: the data directory');
  if (resolved.fsync !== 'always' && resolved.fsync !== 'never')
    throw invalidOption('fsync', `must be 'always' or 'never', got ${JSON.stringify(resolved.fsync)}`);
  if (!Number.isInteger(resolved.maxBatchSize) || resolved.maxBatchSize < 1) {
    throw invalidOption('maxBatchSize', `must be a positive integer, got ${JSON.stringify(resolved.maxBatchSize)}`);
  }
  if (!Number.isFinite(resolved.retryDelayMs) || resolved.retryDelayMs < 0) {
    throw invalidOption('retryDelayMs', `must be a non-negative number of ms, got ${JSON.stringify(resolved.retryDelayMs)}`);
  }
  if (typeof resolved.log !== 'function') throw invalidOption('log', 'must be a function');
  return resolved;
}

function invalidOption(key: string, problem: string): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidOptions, `EmbeddedTransport option \`${key}\` ${problem}`);
}

function invalidSubscribe(key: keyof SubscribeOptions, problem: string): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidOptions, `subscribe option \`${key}\` ${problem}`);
}

function checkName(key: 'topic' | 'groupId', name: string): void {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name) || name === '.' || name === '..') {
    throw new RuntimeError(
      RuntimeErrorCode.InvalidOptions,
      `${key} ${JSON.stringify(name)} must be 1..249 of [a-zA-Z0-9._-], not '.' or '..'`,
    );
  }
}
