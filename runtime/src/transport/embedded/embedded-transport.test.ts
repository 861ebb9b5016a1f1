/**
 * The embedded transport: the shared conformance suite on a temporary directory, and what only
 * a file log has to get right — repairing damaged partition files when it opens them, and
 * refusing bad options and names with errors that say which.
 */
import { randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { RuntimeErrorCode, TransportError } from '../../errors.js';
import { transportConformance } from '../conformance.js';
import { openTransport, type TransportConfig } from '../open.js';
import type { ConsumedRecord, Transport } from '../transport.js';
import { EmbeddedTransport, type EmbeddedTransportOptions } from './embedded-transport.js';

transportConformance('embedded', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-transport-'));
  const config: TransportConfig = { kind: 'embedded', dir };
  return { config, open: () => openTransport(config), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('EmbeddedTransport', () => {
  const topic = 'troupe.actor.test';
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let dir: string;
  let logged: string[];
  let transport: Transport | undefined;

  const open = async (options: Partial<EmbeddedTransportOptions> = {}): Promise<Transport> => {
    transport = await EmbeddedTransport.open({ dir, log: (message) => logged.push(message), ...options });
    return transport;
  };
  const reopen = async (): Promise<Transport> => {
    await transport?.close();
    return open();
  };
  const logFile = (): string => join(dir, 'topics', topic, '0.log');
  const send = (values: readonly string[]): Promise<void> =>
    transport!.send(values.map((value) => ({ topic, key: 'k', value: encoder.encode(value) })));

  /** A log with `count` records r0, r1, … in one partition, closed. */
  const seed = async (count: number): Promise<void> => {
    await open();
    await transport!.createTopic(topic, 1);
    await send(Array.from({ length: count }, (_, i) => `r${i}`));
    await transport!.close();
    transport = undefined;
  };

  /** Where each record's frame sits in the partition file: [start, end) byte ranges. */
  const frames = async (): Promise<{ start: number; end: number }[]> => {
    const bytes = await readFile(logFile());
    const found: { start: number; end: number }[] = [];
    for (let start = 0; start < bytes.length;) {
      const end = start + 8 + bytes.readUInt32LE(start);
      found.push({ start, end });
      start = end;
    }
    return found;
  };

  /** Everything a new group receives, once it has `count` records. */
  const consumeAll = async (count: number): Promise<ConsumedRecord[]> => {
    const records: ConsumedRecord[] = [];
    const subscription = await transport!.subscribe({
      groupId: `reader-${randomUUID()}`,
      topics: [topic],
      async eachBatch(batch) {
        records.push(...batch.records);
        batch.resolveOffset(batch.records.at(-1)!.offset);
      },
    });
    const deadline = Date.now() + 10_000;
    while (records.length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    await subscription.close();
    return records;
  };
  const values = (records: readonly ConsumedRecord[]): string[] => records.map((r) => decoder.decode(r.value));

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'troupe-embedded-'));
    logged = [];
  });
  afterEach(async () => {
    await transport?.close();
    transport = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('cuts garbage appended after the last record on reopen, never delivers it, and appends after it', async () => {
    await seed(5);
    await appendFile(logFile(), Buffer.from('a torn write: not a frame at all'));

    await open();
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/torn or damaged tail at record 5/);
    expect(await transport!.endOffset(topic, 0)).toBe(5);
    await send(['after']);
    expect(values(await consumeAll(6))).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'after']);

    await reopen();
    expect(logged).toHaveLength(1);
    expect(await transport!.endOffset(topic, 0)).toBe(6);
  });

  it('cuts a last record torn in half on reopen and never delivers it', async () => {
    await seed(5);
    const last = (await frames()).at(-1)!;
    await truncate(logFile(), last.start + Math.floor((last.end - last.start) / 2));

    await open();
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/torn or damaged tail at record 4 .*a body cut short/);
    expect((await stat(logFile())).size).toBe(last.start);
    await send(['after']);
    const records = await consumeAll(5);
    expect(values(records)).toEqual(['r0', 'r1', 'r2', 'r3', 'after']);
    expect(records.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
  });

  it('truncates from a record whose checksum fails in the middle of the file, and reports the records lost after it', async () => {
    await seed(10);
    const damaged = (await frames())[4]!;
    const bytes = await readFile(logFile());
    bytes[damaged.start + 10]! ^= 0xff;
    await writeFile(logFile(), bytes);

    await open();
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/CORRUPTION IN THE MIDDLE .* record 4 .*checksum mismatch.* 5 intact-looking records/);
    expect(await transport!.endOffset(topic, 0)).toBe(4);
    await send(['after']);
    expect(values(await consumeAll(5))).toEqual(['r0', 'r1', 'r2', 'r3', 'after']);
  });

  it('refuses records for an unknown topic or partition, naming it, and sends none of that call', async () => {
    await open();
    await transport!.createTopic(topic, 2);
    const good = { topic, key: 'k', value: encoder.encode('v') };

    const unknownTopic = transport!.send([good, { topic: 'troupe.no-such-topic', key: 'k', value: encoder.encode('v') }]);
    await expect(unknownTopic).rejects.toBeInstanceOf(TransportError);
    await expect(unknownTopic).rejects.toMatchObject({
      topic: 'troupe.no-such-topic',
      message: expect.stringContaining('troupe.no-such-topic'),
    });
    await expect(transport!.send([{ ...good, partition: 2 }])).rejects.toMatchObject({ topic, partition: 2 });
    await expect(transport!.createTopic(topic, 3)).rejects.toThrow(/exists with 2 partitions/);
    expect(await transport!.endOffset(topic, 0)).toBe(0);
    expect(await transport!.endOffset(topic, 1)).toBe(0);
  });

  it('refuses invalid options with an error naming the key', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'dir'],
      [{ dir, fsync: 'sometimes' }, 'fsync'],
      [{ dir, maxBatchSize: 0 }, 'maxBatchSize'],
      [{ dir, retryDelayMs: -1 }, 'retryDelayMs'],
      [{ dir, fsnyc: 'never' }, 'fsnyc'],
    ];
    for (const [options, key] of cases) {
      await expect(EmbeddedTransport.open(options as unknown as EmbeddedTransportOptions), key).rejects.toMatchObject({
        code: RuntimeErrorCode.InvalidOptions,
        message: expect.stringContaining(`\`${key}\``),
      });
    }
  });

  it('refuses a second open of a directory that is open, and opens it again once closed', async () => {
    await open();
    await expect(EmbeddedTransport.open({ dir })).rejects.toMatchObject({
      code: RuntimeErrorCode.InvalidOptions,
      message: expect.stringContaining('`dir`'),
    });
    await reopen();
  });

  it("keeps acknowledged records across a close with fsync 'never'", async () => {
    await open({ fsync: 'never' });
    await transport!.createTopic(topic, 1);
    await send(['a', 'b']);
    await reopen();
    expect(values(await consumeAll(2))).toEqual(['a', 'b']);
  });
});
