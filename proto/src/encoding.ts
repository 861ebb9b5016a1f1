// Encoding of hot-path messages with one reused writer: ts-proto's `encode` starts a fresh
// BinaryWriter by default, which allocates and grows a buffer for every message.
import { BinaryWriter } from '@bufbuild/protobuf/wire';

/** A generated message type, as far as encoding goes. */
export interface Encodes<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
}

const shared = new BinaryWriter();

/**
 * The message's bytes, written through a writer kept between calls (encoding is synchronous, so
 * no two calls share it at once); only the result is allocated.
 *
 * @example
 * const value = encodeMessage(Envelope, { id, target, type, payload, attempt: 1 });
 */
export function encodeMessage<T>(type: Encodes<T>, message: T): Uint8Array {
  try {
    return type.encode(message, shared).finish();
  } catch (error) {
    // finish() also resets the writer, so the next message does not start after this one's half.
    shared.finish();
    throw error;
  }
}
