/**
 * Packs: the messages that one process sends to one partition of an actor topic at about the
 * same time travel as one record. Its `troupe-pack` header counts them, and its value holds their
 * envelopes size-delimited. On Kafka a small record costs both clients more than its bytes do
 * (the producer encodes each record on its own, the consumer decodes each), so a burst of tells
 * goes through as a few records rather than hundreds.
 *
 * Only records with the same headers share a pack, so every message keeps its trace context in
 * the record's headers; a pack of one is sent as the plain record. Topics other than actor topics
 * (pools, events, replies) are never packed: what reads them counts records as messages.
 *
 * Each message of a pack is an input of its own. Its offset, as the actor system records it, is
 * its position: the record's offset × {@link PACK_SLOTS} + its index in the pack.
 */
import { setImmediate } from 'node:timers/promises';
import { Envelope, joinSizeDelimited, splitSizeDelimited } from '@troupe/proto';

import { partitionFor } from '../transport/partitioner.js';
import type { ConsumedRecord, ProducerRecord, Transport } from '../transport/transport.js';
import { actorTopic } from './actor.js';

/** The header that marks a pack, with the number of envelopes in it. */
export const PACK_HEADER = 'troupe-pack';

/** Most messages in one pack; positions leave this many slots per record. */
export const PACK_SLOTS = 4_096;

/** Most bytes of envelopes in one pack, well under a broker's default `message.max.bytes` (1 MB). */
const PACK_MAX_BYTES = 256 * 1024;

const ACTOR_TOPIC_PREFIX = actorTopic('');

/** One message of a consumed record, at its position. */
export interface Input {
  offset: number;
  envelope: Envelope;
}

/**
 * The messages of a consumed record of an actor topic: its envelope, or each envelope of its
 * pack. Throws when the value is not what its header says.
 */
export function inputsOf(record: ConsumedRecord): Input[] {
  const first = record.offset * PACK_SLOTS;
  if (record.headers[PACK_HEADER] === undefined) return [{ offset: first, envelope: Envelope.decode(record.value) }];
  return splitSizeDelimited(record.value).map((bytes, index) => ({ offset: first + index, envelope: Envelope.decode(bytes) }));
}

/**
 * Sends records, packing those to actor topics. Sends made before the event loop's next turn go
 * together, one call of the transport per topic, so a failure (a topic that does not exist)
 * fails only the sends to that topic.
 */
export class Packer {
  readonly #transport: Transport;
  /** Records waiting for the next turn of the event loop, by topic, with the promise of their send. */
  readonly #waiting = new Map<string, { records: ProducerRecord[]; sent: Promise<void> }>();
  /** Partition counts of actor topics, which are fixed once the topic exists. */
  readonly #counts = new Map<string, Promise<number>>();

  constructor(transport: Transport) {
    this.#transport = transport;
  }

  /** Resolves once every record is durable; records of one partition keep their order. */
  send(records: readonly ProducerRecord[]): Promise<void> {
    const sends = new Set<Promise<void>>();
    const others: ProducerRecord[] = [];
    for (const record of records) {
      if (!record.topic.startsWith(ACTOR_TOPIC_PREFIX)) {
        others.push(record);
        continue;
      }
      let waiting = this.#waiting.get(record.topic);
      if (waiting === undefined) {
        const records: ProducerRecord[] = [];
        waiting = { records, sent: this.#sendNextTurn(record.topic, records) };
        this.#waiting.set(record.topic, waiting);
      }
      waiting.records.push(record);
      sends.add(waiting.sent);
    }
    if (others.length > 0) sends.add(this.#transport.send(others));
    if (sends.size <= 1) return sends.values().next().value ?? Promise.resolve();
    return Promise.all(sends).then(() => undefined);
  }

  async #sendNextTurn(topic: string, records: ProducerRecord[]): Promise<void> {
    await setImmediate();
    this.#waiting.delete(topic);
    await this.#transport.send(pack(topic, records, await this.#countOf(topic)));
  }

  /** Looked up once per topic; calls made meanwhile share the lookup, so sends keep their order. */
  #countOf(topic: string): Promise<number> {
    let count = this.#counts.get(topic);
    if (count === undefined) {
      count = this.#transport.partitionCount(topic);
      this.#counts.set(topic, count);
      // A failed lookup is not kept: the topic may be created next.
      count.catch(() => this.#counts.delete(topic));
    }
    return count;
  }
}

interface OpenPack {
  partition: number;
  headers: string;
  records: ProducerRecord[];
  bytes: number;
}

/** The records of one topic as packs, in an order that keeps each partition's records in theirs. */
function pack(topic: string, records: readonly ProducerRecord[], partitions: number): ProducerRecord[] {
  const packs: OpenPack[] = [];
  const open = new Map<number, OpenPack>();
  for (const record of records) {
    const partition = record.partition ?? partitionFor(record.key, partitions);
    const headers = headersKey(record.headers);
    let current = open.get(partition);
    if (
      current === undefined ||
      current.headers !== headers ||
      current.records.length === PACK_SLOTS ||
      current.bytes + record.value.byteLength > PACK_MAX_BYTES
    ) {
      current = { partition, headers, records: [], bytes: 0 };
      open.set(partition, current);
      packs.push(current);
    }
    current.records.push(record);
    current.bytes += record.value.byteLength;
  }
  return packs.map(({ partition, records: packed }) => {
    const first = packed[0]!;
    if (packed.length === 1) return first;
    return {
      topic,
      key: first.key,
      partition,
      value: joinSizeDelimited(packed.map((record) => record.value)),
      headers: { ...first.headers, [PACK_HEADER]: String(packed.length) },
    };
  });
}

function headersKey(headers: ProducerRecord['headers']): string {
  if (headers === undefined) return '';
  let key = '';
  for (const name in headers) key += `${name}\0${headers[name]}\0`;
  return key;
}
