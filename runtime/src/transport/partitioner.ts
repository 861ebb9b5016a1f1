/**
 * The partition of a key: 32-bit FNV-1a of its UTF-8 bytes, modulo the partition count. Every
 * transport uses this one function, so an actor lives in the same partition on all of them.
 */

const utf8 = new TextEncoder();
/** Every send hashes its key: the bytes go here rather than into a new array each time. */
let scratch = new Uint8Array(256);

/** @example partitionFor('acme/storefront', 12) // always the same number in 0..11 */
export function partitionFor(key: string, partitions: number): number {
  // A UTF-16 code unit takes at most three bytes of UTF-8.
  if (3 * key.length > scratch.length) scratch = new Uint8Array(3 * key.length);
  const { written } = utf8.encodeInto(key, scratch);
  let hash = 0x811c9dc5;
  for (let i = 0; i < written; i += 1) hash = Math.imul(hash ^ scratch[i]!, 0x01000193);
  return (hash >>> 0) % partitions;
}
