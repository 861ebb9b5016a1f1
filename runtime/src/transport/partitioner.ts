/**
 * The partition of a key: 32-bit FNV-1a of its UTF-8 bytes, modulo the partition count. Every
 * transport uses this one function, so an actor lives in the same partition on all of them.
 *
 * @example partitionFor('acme/storefront', 12) // always the same number in 0..11
 */
export function partitionFor(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(key)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}
