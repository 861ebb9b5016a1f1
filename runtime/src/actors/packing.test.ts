/** Packs on the embedded log: what goes into one record, in what order, and what a failed send fails. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Envelope } from '@troupe/proto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTransport } from '../transport/open.js';
import { partitionFor } from '../transport/partitioner.js';
import type { ConsumedRecord, ProducerRecord, Transport } from '../transport/transport.js';
import { actorTopic } from './actor.js';
import { PACK_HEADER, PACK_SLOTS, Packer, inputsOf } from './packing.js';

const TOPIC = actorTopic('packed');
const POOL_TOPIC = 'troupe.pool.acme.developers';
const PARTITIONS = 4;

/** Two actor ids in different partitions of TOPIC. */
const [A, B] = (() => {
  const a = 'actor-0';
  const b = Array.from({ length: 50 }, (_, i) => `actor-${i + 1}`).find(
    (id) => partitionFor(id, PARTITIONS) !== partitionFor(a, PARTITIONS),
  )!;
  return [a, b];
})();

function message(topic: string, actor: string, id: string, headers?: Record<string, string>): ProducerRecord {
  const value = Envelope.encode(Envelope.fromPartial({ id, target: { type: 'packed', id: actor } })).finish();
  return headers === undefined ? { topic, key: actor, value } : { topic, key: actor, value, headers };
}

describe('Packer', () => {
  let dir: string;
  let transport: Transport;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'troupe-packing-'));
    transport = await openTransport({ kind: 'embedded', dir });
    await transport.createTopic(TOPIC, PARTITIONS);
    await transport.createTopic(POOL_TOPIC, PARTITIONS);
  });

  afterEach(async () => {
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every record of `topic`, read from the start. */
  async function records(topic: string, expected: number): Promise<ConsumedRecord[]> {
    const read: ConsumedRecord[] = [];
    let enough!: () => void;
    const done = new Promise<void>((resolve) => (enough = resolve));
    const subscription = await transport.subscribe({
      groupId: `reader-${topic}`,
      topics: [topic],
      eachBatch: async (batch) => {
        read.push(...batch.records);
        batch.resolveOffset(batch.records.at(-1)!.offset);
        if (read.length >= expected) enough();
      },
    });
    await done;
    await subscription.close();
    return read;
  }

  it('sends the messages of one turn of the event loop to a partition as one record, in the order sent', async () => {
    const packer = new Packer(transport);
    await Promise.all([
      packer.send([message(TOPIC, A, 'a1'), message(TOPIC, B, 'b1')]),
      packer.send([message(TOPIC, A, 'a2')]),
      packer.send([message(TOPIC, A, 'a3')]),
    ]);
    const read = await records(TOPIC, 2);
    const byActor = new Map(read.map((record) => [record.key, record]));
    expect(byActor.get(A)!.headers[PACK_HEADER]).toBe('3');
    expect(inputsOf(byActor.get(A)!).map(({ envelope }) => envelope.id)).toEqual(['a1', 'a2', 'a3']);
    expect(inputsOf(byActor.get(A)!).map(({ offset }) => offset)).toEqual([0, 1, 2]);
    // A message alone goes as the plain record.
    expect(byActor.get(B)!.headers).toEqual({});
    expect(inputsOf(byActor.get(B)!).map(({ envelope }) => envelope.id)).toEqual(['b1']);
  });

  it('packs only records with the same headers, and never those of topics other than actor topics', async () => {
    const packer = new Packer(transport);
    const traced = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
    await packer.send([
      message(TOPIC, A, 'a1', traced),
      message(TOPIC, A, 'a2', traced),
      message(TOPIC, A, 'a3'),
      message(POOL_TOPIC, A, 'p1'),
      message(POOL_TOPIC, A, 'p2'),
    ]);
    const read = await records(TOPIC, 2);
    expect(read.map((record) => record.headers)).toEqual([{ ...traced, [PACK_HEADER]: '2' }, {}]);
    expect(read.flatMap((record) => inputsOf(record).map(({ envelope }) => envelope.id))).toEqual(['a1', 'a2', 'a3']);
    // The second record's message comes after all of the first's.
    expect(inputsOf(read[1]!)[0]!.offset).toBe(PACK_SLOTS);
    expect((await records(POOL_TOPIC, 2)).map((record) => record.headers)).toEqual([{}, {}]);
  });

  it('fails only the sends to a topic that does not exist', async () => {
    const packer = new Packer(transport);
    const missing = packer.send([message(actorTopic('missing'), A, 'm1')]);
    const sent = packer.send([message(TOPIC, A, 'a1')]);
    await expect(missing).rejects.toThrow(/troupe.actor.missing: no such topic/);
    await expect(sent).resolves.toBeUndefined();
    expect(await transport.endOffset(TOPIC, partitionFor(A, PARTITIONS))).toBe(1);
  });
});

describe('inputsOf', () => {
  it('refuses a pack whose value ends inside an envelope', () => {
    const record: ConsumedRecord = {
      topic: TOPIC,
      partition: 0,
      offset: 7,
      key: A,
      value: Uint8Array.of(10, 1, 2),
      headers: { [PACK_HEADER]: '2' },
      timestamp: 0,
    };
    expect(() => inputsOf(record)).toThrow('the bytes end inside a message: they were cut short');
  });
});
