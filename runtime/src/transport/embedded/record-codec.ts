/**
 * The on-disk frame of one record in a partition file:
 *
 *   [u32 LE body length][u32 LE CRC-32 of body][body]
 *   body = [u8 format 1][varint timestamp ms][varint key bytes][key]
 *          [varint header count]([varint name bytes][name][varint value bytes][value])*
 *          [value: the rest of the body]
 *
 * Varints are unsigned LEB128, so short keys and headers cost one length byte each.
 */
import { crc32 } from 'node:zlib';

/** Bytes before the body: its length and its checksum. */
export const FRAME_HEADER_BYTES = 8;

/** The first body byte; a reader meeting another value refuses the record. */
export const FORMAT_VERSION = 1;

/** Format byte, a one-byte timestamp, key length and header count: no valid body is shorter. */
export const MIN_BODY_BYTES = 4;

/** Larger bodies are refused on send, so on read a larger length can only be damage. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** The parts of a record that the frame stores; topic, partition and offset come from where it sits. */
export interface RecordBody {
  key: string;
  headers: Readonly<Record<string, string>>;
  value: Uint8Array;
  timestamp: number;
}

/** Encodes one record as a complete frame, ready to append. */
export function encodeFrame(record: RecordBody): Buffer {
  const key = Buffer.from(record.key, 'utf8');
  const headers = Object.entries(record.headers).map(([name, value]) => [Buffer.from(name, 'utf8'), Buffer.from(value, 'utf8')] as const);
  let bodyLength =
    1 + varintLength(record.timestamp) + varintLength(key.length) + key.length + varintLength(headers.length) + record.value.length;
  for (const [name, value] of headers) bodyLength += varintLength(name.length) + name.length + varintLength(value.length) + value.length;
  if (bodyLength > MAX_BODY_BYTES) throw new RangeError(`record of ${bodyLength} bytes exceeds the ${MAX_BODY_BYTES}-byte limit`);

  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyLength);
  let at = FRAME_HEADER_BYTES;
  frame[at++] = FORMAT_VERSION;
  at = writeVarint(frame, at, record.timestamp);
  at = writeBytes(frame, at, key);
  at = writeVarint(frame, at, headers.length);
  for (const [name, value] of headers) at = writeBytes(frame, writeBytes(frame, at, name), value);
  frame.set(record.value, at);

  frame.writeUInt32LE(bodyLength, 0);
  frame.writeUInt32LE(crc32(frame.subarray(FRAME_HEADER_BYTES)), 4);
  return frame;
}

/** Whether `body` matches the checksum stored in its frame header. */
export function bodyIntact(body: Uint8Array, storedCrc: number): boolean {
  return crc32(body) === storedCrc;
}

/** Decodes a checksummed body; throws a RangeError when it is not a body this format wrote. */
export function decodeBody(body: Buffer): RecordBody {
  if (body[0] !== FORMAT_VERSION) throw new RangeError(`unknown record format ${body[0]}`);
  const cursor = { at: 1 };
  const timestamp = readVarint(body, cursor);
  const key = readString(body, cursor);
  const headerCount = readVarint(body, cursor);
  const headers: Record<string, string> = {};
  for (let i = 0; i < headerCount; i++) {
    const name = readString(body, cursor);
    headers[name] = readString(body, cursor);
  }
  // A copy, so a handler keeping one value does not pin the whole batch's read buffer.
  const value = new Uint8Array(body.subarray(cursor.at));
  return { key, headers, value, timestamp };
}

function varintLength(value: number): number {
  let length = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) length++;
  return length;
}

// Division instead of shifts: timestamps exceed 32 bits.
function writeVarint(target: Buffer, at: number, value: number): number {
  let rest = value;
  while (rest >= 0x80) {
    target[at++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  target[at++] = rest;
  return at;
}

function writeBytes(target: Buffer, at: number, bytes: Buffer): number {
  const next = writeVarint(target, at, bytes.length);
  target.set(bytes, next);
  return next + bytes.length;
}

function readVarint(source: Buffer, cursor: { at: number }): number {
  let value = 0;
  let scale = 1;
  // Eight 7-bit groups cover every safe integer; more means the bytes are not a varint.
  for (let i = 0; i < 8; i++) {
    const byte = source[cursor.at++];
    if (byte === undefined) throw new RangeError('record body ends inside a varint');
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return value;
    scale *= 0x80;
  }
  throw new RangeError('varint longer than 8 bytes');
}

function readString(source: Buffer, cursor: { at: number }): string {
  const length = readVarint(source, cursor);
  const end = cursor.at + length;
  if (end > source.length) throw new RangeError('record body ends inside a string');
  const text = source.toString('utf8', cursor.at, end);
  cursor.at = end;
  return text;
}
