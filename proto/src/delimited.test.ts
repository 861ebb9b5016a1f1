/** The size-delimited framing of archive files: messages read back across any chunking, and a cut-short or oversized stream refused. */
import { describe, expect, it } from 'vitest';
import { ArchivePart, joinSizeDelimited, readSizeDelimited, sizeDelimited, splitSizeDelimited } from './index.js';

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += size) yield bytes.subarray(at, at + size);
}

async function read(bytes: Uint8Array, size: number, maxBytes = 1 << 20): Promise<ArchivePart[]> {
  const parts: ArchivePart[] = [];
  for await (const message of readSizeDelimited(chunked(bytes, size), maxBytes)) parts.push(ArchivePart.decode(message));
  return parts;
}

describe('size-delimited framing', () => {
  const parts: ArchivePart[] = [
    { part: { $case: 'artifactData', value: Buffer.alloc(300, 7) } },
    { part: { $case: 'trailer', value: { sha256: 'ab'.repeat(32), parts: 1 } } },
  ];
  const stream = Buffer.concat(parts.map((part) => sizeDelimited(ArchivePart.encode(part).finish())));

  it('reads back every message however the stream is cut into chunks', async () => {
    for (const size of [1, 2, 7, 301, stream.byteLength]) expect(await read(stream, size), `chunks of ${size}`).toEqual(parts);
  });

  it('refuses a stream that ends inside a message, and a message over the limit', async () => {
    await expect(read(stream.subarray(0, stream.byteLength - 1), 64)).rejects.toThrow('the stream ends inside a message: it was cut short');
    await expect(read(stream, 64, 100)).rejects.toThrow(/a message of 30\d bytes is larger than the limit of 100/);
  });
});

describe('size-delimited messages in one value', () => {
  const messages = [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(200, 9)];

  it('splits what it joined into the same messages, in order', () => {
    expect(splitSizeDelimited(joinSizeDelimited(messages)).map((message) => Buffer.from(message))).toEqual(messages);
    expect(splitSizeDelimited(joinSizeDelimited([]))).toEqual([]);
  });

  it('refuses bytes that end inside a message', () => {
    const joined = joinSizeDelimited(messages);
    expect(() => splitSizeDelimited(joined.subarray(0, joined.byteLength - 1))).toThrow(
      'the bytes end inside a message: they were cut short',
    );
  });
});
