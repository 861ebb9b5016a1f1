/**
 * The embedded (SQLite) Store: the shared conformance suite, then what only the embedded store
 * promises: option validation, CLOSED after close, input id pruning, refusing files it cannot
 * read, and that a turn survives the process being killed mid-flight.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { RuntimeErrorCode } from '../../errors.js';
import { storeConformance } from '../conformance.js';
import { openStore } from '../open.js';
import type { ActorRef, Timer } from '../store.js';
import type { CrashChildArgs } from './crash-child.js';
import { EmbeddedStore, type EmbeddedStoreOptions } from './embedded-store.js';

storeConformance('embedded', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-store-'));
  // A subdirectory that does not exist yet: opening creates it.
  const path = join(dir, 'data', 'store.db');
  return {
    open: () => openStore({ kind: 'embedded', path }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('EmbeddedStore', () => {
  const actor: ActorRef = { type: 'project', id: 'p1' };
  let dir: string;
  let path: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'troupe-embedded-store-'));
    path = join(dir, 'store.db');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['path', { path: '' }],
    ['keepInputIds', { path: 'x.db', keepInputIds: 5 }],
    ['keepInputIds', { path: 'x.db', keepInputIds: 10_000.5 }],
    ['clock', { path: 'x.db', clock: 'now' as unknown as () => number }],
  ] satisfies [string, EmbeddedStoreOptions][])('refuses an invalid %s option, naming it', async (key, options) => {
    const opening = EmbeddedStore.open(options);
    await expect(opening).rejects.toMatchObject({ code: RuntimeErrorCode.InvalidOptions });
    await expect(opening).rejects.toThrow(`"${key}"`);
  });

  it('fails every call after close with CLOSED, and closing again is harmless', async () => {
    const store = await EmbeddedStore.open({ path });
    await store.close();
    await store.close();

    const closed = { code: RuntimeErrorCode.Closed };
    await expect(store.load(actor)).rejects.toMatchObject(closed);
    await expect(store.commitTurn({ actor, expectedSeq: 0, events: [], input: { id: 'after-close' } })).rejects.toMatchObject(closed);
    await expect(store.appliedInputs(actor, ['x'])).rejects.toMatchObject(closed);
    await expect(store.markSent(actor, ['x'])).rejects.toMatchObject(closed);
    await expect(store.dueTimers(['s'], 0, 1)).rejects.toMatchObject(closed);
    await expect(store.nextTimerDue(['s'])).rejects.toMatchObject(closed);
    await expect(store.deleteTimer(actor, 'x', 0)).rejects.toMatchObject(closed);
    await expect(store.claim({ scope: 's', epoch: 1 })).rejects.toMatchObject(closed);
  });

  it('keeps the most recent keepInputIds input ids per actor, forgetting older ones once every keepInputIds inputs', async () => {
    const keepInputIds = 10_000;
    const store = await EmbeddedStore.open({ path, keepInputIds });
    const neighbour: ActorRef = { type: 'project', id: 'p2' };
    await store.commitTurn({ actor: neighbour, expectedSeq: 0, events: [], input: { id: 'input-1' } });
    const applyInputs = async (from: number, to: number) => {
      for (let first = from; first <= to; first += 500) {
        const ids = Array.from({ length: Math.min(500, to - first + 1) }, (_, i) => `input-${first + i}`);
        await store.commitTurns(ids.map((id) => ({ actor, expectedSeq: 0, events: [], input: { id } })));
      }
    };

    await applyInputs(1, 2 * keepInputIds - 1);
    expect(await store.appliedInputs(actor, ['input-1'])).toEqual(new Set(['input-1']));
    await applyInputs(2 * keepInputIds, 2 * keepInputIds);
    const ids = [1, keepInputIds, keepInputIds + 1, 2 * keepInputIds].map((n) => `input-${n}`);
    expect(await store.appliedInputs(actor, ids)).toEqual(new Set([`input-${keepInputIds + 1}`, `input-${2 * keepInputIds}`]));
    // Pruning is per actor.
    expect(await store.appliedInputs(neighbour, ['input-1'])).toEqual(new Set(['input-1']));
    await store.close();
  });

  it('rolls back a turn that fails half-way through its writes', async () => {
    const store = await EmbeddedStore.open({ path });
    const unbindable = Symbol('not bytes') as unknown as Uint8Array;
    const badTimer: Timer = { actor, name: 'bad', dueAt: 1, shard: 'project/0', message: unbindable };

    await expect(
      store.commitTurn({
        actor,
        expectedSeq: 0,
        events: [new Uint8Array([1])],
        input: { id: 'half-way', offset: 3 },
        timersSet: [badTimer],
      }),
    ).rejects.toThrow();

    expect(await store.load(actor)).toEqual({ events: [], seq: 0, outbox: [] });
    expect(await store.appliedInputs(actor, ['half-way'])).toEqual(new Set());
    await store.close();
  });

  it('refuses a file that is not a database with CORRUPT', async () => {
    await writeFile(path, 'not a database, just some text that is long enough to have a header');
    await expect(EmbeddedStore.open({ path })).rejects.toMatchObject({ code: RuntimeErrorCode.Corrupt });
  });

  it('refuses a database written by a newer schema version', async () => {
    await (await EmbeddedStore.open({ path })).close();
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();

    const opening = EmbeddedStore.open({ path });
    await expect(opening).rejects.toMatchObject({ code: RuntimeErrorCode.Corrupt });
    await expect(opening).rejects.toThrow('schema version 99');
  });

  it('keeps every turn committed before a SIGKILL, and no partial turn', async () => {
    const eventsPerTurn = 3;
    const args: CrashChildArgs = { path, actor, shard: 'project/0', eventsPerTurn };
    const childFile = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', childFile, JSON.stringify(args)], {
      cwd: fileURLToPath(new URL('../../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));

    const printed: number[] = [];
    let stderr = '';
    let partial = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`child printed ${printed.length} seqs in time; stderr: ${stderr}`)), 30_000);
      // Harmless once resolved: a settled promise ignores the later reject.
      child.once('exit', (code) => {
        clearTimeout(deadline);
        reject(new Error(`child exited with ${code} before it was killed; stderr: ${stderr}`));
      });
      child.stdout.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop() ?? '';
        printed.push(...lines.map(Number));
        if (printed.length >= 200) {
          clearTimeout(deadline);
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    expect(await exited).toBe('SIGKILL');

    const store = await EmbeddedStore.open({ path });
    const record = await store.load(actor);
    const turns = record.seq / eventsPerTurn;
    const lastPrinted = Math.max(...printed);

    expect(record.seq).toBeGreaterThanOrEqual(lastPrinted);
    expect(Number.isInteger(turns)).toBe(true);
    expect(record.events.map((e) => e.seq)).toEqual(Array.from({ length: record.seq }, (_, i) => i + 1));
    const decoder = new TextDecoder();
    expect(record.events.map((e) => decoder.decode(e.data))).toEqual(
      Array.from({ length: record.seq }, (_, i) => `turn ${Math.floor(i / eventsPerTurn) + 1} event ${i % eventsPerTurn}`),
    );
    expect(record.outbox.map((m) => m.id)).toEqual(Array.from({ length: turns }, (_, i) => `out-${i + 1}`));
    expect(record.lastInputOffset).toBe(turns);
    expect(await store.appliedInputs(actor, [`input-${turns}`, `input-${turns + 1}`])).toEqual(new Set([`input-${turns}`]));
    expect(await store.nextTimerDue([args.shard])).toBe(turns);
    await store.close();
  });
});
