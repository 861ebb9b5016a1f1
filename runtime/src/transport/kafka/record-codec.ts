/**
 * Converts records between the Transport contract and kafkajs messages: keys, values and header
 * values are strings and bytes on our side and Buffers on the wire; offsets and timestamps are
 * int64 strings in kafkajs and numbers here.
 */
import type { KafkaMessage, Message } from 'kafkajs';

import type { ConsumedRecord, ProducerRecord } from '../transport.js';

/** Bytes a record adds to a produce request beyond its key, value and headers (Kafka's record header, roughly). */
const RECORD_OVERHEAD_BYTES = 24;

/** Shared by every record without headers; frozen, since records are handed on to callers. */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/** A record as kafkajs sends it, and about how many bytes it adds to its partition's record batch. */
export interface EncodedRecord {
  message: Message;
  bytes: number;
}

/** The kafkajs message of a record, with the partition already chosen. Throws a TypeError on a malformed record. */
export function toMessage(record: ProducerRecord, partition: number): EncodedRecord {
  if (typeof record.key !== 'string') throw new TypeError('the key must be a string');
  if (!(record.value instanceof Uint8Array)) throw new TypeError('the value must be a Uint8Array');
  let headers: Record<string, string> | undefined;
  let bytes = RECORD_OVERHEAD_BYTES + Buffer.byteLength(record.key) + record.value.byteLength;
  // Most records have none: no entries array is made for them.
  if (record.headers !== undefined) {
    for (const [name, value] of Object.entries(record.headers)) {
      if (typeof value !== 'string') throw new TypeError(`header ${JSON.stringify(name)} must be a string`);
      (headers ??= {})[name] = value;
      bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
    }
  }
  return {
    message: {
      key: record.key,
      // A view, not a copy: the record's bytes go to the socket as they are.
      value: Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength),
      headers,
      partition,
    },
    bytes,
  };
}

/** A fetched kafkajs message as the contract's record. */
export function fromMessage(topic: string, partition: number, message: KafkaMessage): ConsumedRecord {
  let headers: Record<string, string> = NO_HEADERS;
  // kafkajs gives every message a headers object, nearly always empty: for-in makes no entries array for it.
  for (const name in message.headers) {
    const value = message.headers[name];
    if (value === undefined) continue;
    if (headers === NO_HEADERS) headers = {};
    // Kafka allows a header name to repeat; the contract's map keeps the last, as the producer
    // of this transport never repeats one.
    const last = Array.isArray(value) ? value.at(-1) : value;
    if (last !== undefined) headers[name] = last.toString();
  }
  return {
    topic,
    partition,
    offset: Number(message.offset),
    key: message.key?.toString() ?? '',
    value: message.value ?? new Uint8Array(0),
    headers,
    timestamp: Number(message.timestamp),
  };
}
