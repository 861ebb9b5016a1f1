// Size-delimited framing of protobuf messages — each message is a varint of its size followed
// by its bytes — as a project archive file holds its ArchiveParts (troupe/v1/backup.proto) and a
// pack record its Envelopes. The framing is the one other protobuf implementations read and
// write as "delimited" streams.
import { BinaryReader, BinaryWriter, sizeDelimitedPeek } from '@bufbuild/protobuf/wire';

/** An encoded message with its size in front. */
export function sizeDelimited(message: Uint8Array): Uint8Array {
  return joinSizeDelimited([message]);
}

/** Encoded messages, each with its size in front, one after another. */
export function joinSizeDelimited(messages: readonly Uint8Array[]): Uint8Array {
  const writer = new BinaryWriter();
  for (const message of messages) writer.bytes(message);
  return writer.finish();
}

/**
 * The messages of `bytes` (as {@link joinSizeDelimited} makes them), each a view of its encoded
 * bytes. Throws when the bytes end inside a message.
 */
export function splitSizeDelimited(bytes: Uint8Array): Uint8Array[] {
  const messages: Uint8Array[] = [];
  const reader = new BinaryReader(bytes);
  try {
    while (reader.pos < reader.len) messages.push(reader.bytes());
  } catch (cause) {
    throw new Error('the bytes end inside a message: they were cut short', { cause });
  }
  return messages;
}

/**
 * The messages of a size-delimited byte stream, each as its encoded bytes. Throws when a message
 * claims more than `maxBytes`, and when the stream ends inside a message.
 *
 * @example
 * for await (const bytes of readSizeDelimited(createReadStream(file).pipe(createGunzip()), 8 << 20)) {
 *   const part = ArchivePart.decode(bytes);
 * }
 */
export async function* readSizeDelimited(chunks: AsyncIterable<Uint8Array>, maxBytes: number): AsyncGenerator<Uint8Array> {
  let buffered: Uint8Array = new Uint8Array(0);
  // Chunks held back until the message under way is whole: joining them once is cheaper than at every chunk.
  const pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let needed = 0;
  for await (const chunk of chunks) {
    pending.push(chunk);
    pendingBytes += chunk.byteLength;
    if (buffered.byteLength + pendingBytes < needed) continue;
    buffered = Buffer.concat([buffered, ...pending]);
    pending.length = 0;
    pendingBytes = 0;
    for (;;) {
      const peek = sizeDelimitedPeek(buffered);
      if (peek.eof) break;
      if (peek.size > maxBytes) throw new Error(`a message of ${peek.size} bytes is larger than the limit of ${maxBytes}`);
      needed = peek.offset + peek.size;
      if (buffered.byteLength < needed) break;
      yield buffered.subarray(peek.offset, needed);
      buffered = buffered.subarray(needed);
      needed = 0;
    }
  }
  if (buffered.byteLength + pendingBytes > 0) throw new Error('the stream ends inside a message: it was cut short');
}
