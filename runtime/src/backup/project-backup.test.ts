/**
 * Project backups between two embedded runtimes on the simulated provider over HTTP: a
 * delivered project restored in a fresh runtime reads as it did — status, artefacts, ledger,
 * journal — also moved to another namespace, also when it is a project created again under a
 * deleted one's name; an import that stopped after writing the project is finished by a retry;
 * a project exported in the middle of a phase goes on to delivery in the runtime it was imported
 * into; and archives that are corrupt, cut short, of an unknown version or of a project that
 * exists are refused with nothing stored.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArchivePart, ProjectPhase, TaskState, type ActorJournal, type ImportProjectRequest } from '@troupe/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobArtifactStore, FileBlobStore } from '../domain/artifacts.js';
import { SIM_PRICES, samplePools, submitCommand } from '../domain/company-fixtures.js';
import { projectActor } from '../domain/project.actor.js';
import { startEmbeddedRuntime, type EmbeddedRuntime } from '../embedded.js';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { llmCallActor } from '../llm/journal.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { SimulatedServer } from '../llm/simulated-server.js';
import { openStore } from '../store/open.js';
import { eventually } from '../testing/eventually.js';
import { ProjectBackup } from './project-backup.js';

/** The parts as ImportProject requests, the first naming `namespace` when given. */
async function* requests(parts: readonly ArchivePart[], namespace = ''): AsyncGenerator<ImportProjectRequest> {
  for (const [i, part] of parts.entries()) yield { namespace: i === 0 ? namespace : '', part };
}

async function exported(runtime: EmbeddedRuntime, namespace: string, name: string): Promise<ArchivePart[]> {
  const parts: ArchivePart[] = [];
  for await (const part of runtime.company.exportProject(namespace, name)) parts.push(part);
  return parts;
}

function journals(parts: readonly ArchivePart[]): ActorJournal[] {
  return parts.flatMap((part) => (part.part?.$case === 'journal' ? [part.part.value] : []));
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A copy of the parts with `change` applied to the part at `index`. */
function tampered(parts: readonly ArchivePart[], index: number, change: (part: ArchivePart) => ArchivePart): ArchivePart[] {
  return parts.map((part, i) => (i === index ? change(ArchivePart.decode(ArchivePart.encode(part).finish())) : part));
}

describe('project backups', () => {
  const cleanups: (() => Promise<void>)[] = [];
  let server: SimulatedServer;

  async function runtime(namespaces: readonly string[], latencyServer = server): Promise<{ runtime: EmbeddedRuntime; dataDir: string }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'troupe-backup-'));
    const started = await startEmbeddedRuntime({
      dataDir,
      providers: [createProvider('simulated', { type: 'simulated', baseURL: latencyServer.openaiBaseURL, pricing: SIM_PRICES })],
      pools: namespaces.flatMap((namespace) => samplePools(namespace)),
      taskCheckMs: 500,
    });
    cleanups.push(async () => {
      await started.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    return { runtime: started, dataDir };
  }

  let source: EmbeddedRuntime;
  let archive: ArchivePart[];

  beforeAll(async () => {
    server = await SimulatedServer.start({ latencyMs: 20, tokensPerSecond: Infinity, seed: 7 });
    cleanups.push(() => server.close());
    source = (await runtime(['acme'])).runtime;
    await source.company.submitProject('submit-1', submitCommand('acme', 'storefront'));
    await eventually(async () => {
      expect((await source.company.getProject('acme', 'storefront'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 60_000);
    archive = await exported(source, 'acme', 'storefront');
  }, 90_000);

  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('restores a delivered project in a fresh runtime as it was: status, artefacts, ledger and journal', async () => {
    const { runtime: target } = await runtime(['acme']);
    const before = await source.company.getProject('acme', 'storefront');
    const status = before?.status;
    expect(status?.artifacts.length).toBeGreaterThan(3);

    const header = archive[0]?.part?.$case === 'header' ? archive[0].part.value : undefined;
    const submitted = submitCommand('acme', 'storefront');
    expect(header?.project).toMatchObject({ namespace: 'acme', name: 'storefront', uid: submitted.uid, generation: 1 });
    expect(header?.project?.spec).toMatchObject({ client: 'acme', brief: submitted.spec?.brief, budget: submitted.spec?.budget });
    expect(header?.project?.workflowPhases.map((phase) => phase.name)).toEqual([
      'requirements',
      'architecture',
      'implementation',
      'review',
      'docs',
      'delivery',
    ]);
    expect(header?.status).toEqual(status);

    const response = await target.company.importProject(requests(archive));
    expect(response.project).toEqual(before);
    expect(response.artifacts).toBe(status?.artifacts.length);
    expect(await target.company.getProject('acme', 'storefront')).toEqual(before);
    expect((await target.company.listProjects('acme')).map((project) => project.name)).toEqual(['storefront']);

    for (const artifact of status?.artifacts ?? []) {
      const restored = await target.company.artifact('acme', 'storefront', artifact.name);
      const original = await source.company.artifact('acme', 'storefront', artifact.name);
      expect(Buffer.from(restored?.bytes ?? []).equals(Buffer.from(original?.bytes ?? [0])), artifact.name).toBe(true);
      expect(sha256(restored?.bytes ?? new Uint8Array()), artifact.name).toBe(artifact.sha256);
    }

    const totals = await source.ledger.totals({ client: 'acme', project: 'acme/storefront' });
    expect(totals.calls).toBe(status?.cost?.llmCalls);
    expect(await target.ledger.totals({ client: 'acme', project: 'acme/storefront' })).toEqual(totals);

    // The journals hold the same events after the same snapshot; renumbered after it, so as long as the events are many.
    const originals = journals(archive);
    const restored = journals(await exported(target, 'acme', 'storefront'));
    expect(restored.map((journal) => `${journal.actorType}/${journal.actorId}`)).toEqual(
      originals.map((journal) => `${journal.actorType}/${journal.actorId}`),
    );
    expect(originals.length).toBe(1 + totals.calls);
    for (const [i, original] of originals.entries()) {
      const copy = restored[i] as ActorJournal;
      expect(copy.events).toEqual(original.events);
      expect(copy.snapshot?.state).toEqual(original.snapshot?.state);
      expect(copy.seq).toBe(original.seq - (original.snapshot?.seq ?? 0));
    }
  }, 60_000);

  it('moves a project to another namespace when the import names one', async () => {
    const { runtime: target } = await runtime(['globex']);
    const response = await target.company.importProject(requests(archive, 'globex'));
    const before = await source.company.getProject('acme', 'storefront');
    const moved = await target.company.getProject('globex', 'storefront');
    expect(response.project).toEqual(moved);
    expect(moved?.namespace).toBe('globex');
    expect(moved?.status?.phase).toBe(ProjectPhase.DELIVERED);
    expect(moved?.status?.cost).toEqual(before?.status?.cost);
    expect(moved?.status?.artifacts.map(({ name, sha256 }) => ({ name, sha256 }))).toEqual(
      before?.status?.artifacts.map(({ name, sha256 }) => ({ name, sha256 })),
    );
    for (const artifact of moved?.status?.artifacts ?? []) {
      expect(artifact.uri).toContain('/globex/storefront/');
      const content = await target.company.artifact('globex', 'storefront', artifact.name);
      expect(sha256(content?.bytes ?? new Uint8Array()), artifact.name).toBe(artifact.sha256);
    }
    expect(await target.company.getProject('acme', 'storefront')).toBeUndefined();
    expect(await target.ledger.totals({ client: 'acme', project: 'globex/storefront' })).toEqual(
      await source.ledger.totals({ client: 'acme', project: 'acme/storefront' }),
    );
    // Its journaled LLM calls moved with it: exported from there, it holds them all again.
    expect(journals(await exported(target, 'globex', 'storefront')).length).toBe(journals(archive).length);
  }, 60_000);

  it("exports and moves every LLM call of a project created again under a deleted one's name", async () => {
    const phase = async () => (await source.company.getProject('acme', 'again'))?.status?.phase;
    const callIds = (parts: readonly ArchivePart[]) =>
      journals(parts)
        .slice(1)
        .map((journal) => journal.actorId);
    const deliveredAs = async (uid: string) => {
      await source.company.submitProject(uid, submitCommand('acme', 'again', { uid }));
      await eventually(async () => expect(await phase()).toBe(ProjectPhase.DELIVERED), 60_000);
      return exported(source, 'acme', 'again');
    };
    const first = callIds(await deliveredAs('again-1'));
    const again = await deliveredAs('again-2');
    const calls = (await source.company.getProject('acme', 'again'))?.status?.cost?.llmCalls ?? 0;
    expect(calls).toBeGreaterThan(0);
    // The project's journal, then the calls of the second project only.
    expect(callIds(again)).toHaveLength(calls);
    expect(callIds(again).filter((id) => first.includes(id))).toEqual([]);

    const { runtime: target } = await runtime(['globex']);
    await target.company.importProject(requests(again, 'globex'));
    expect(journals(await exported(target, 'globex', 'again')).length).toBe(1 + calls);
  }, 120_000);

  it('finishes, when retried, an import that stopped after writing the project', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-backup-retry-'));
    const store = await openStore({ kind: 'embedded', path: join(dir, 'state.db') });
    cleanups.push(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    let ledgerAway = true;
    const recorded: string[] = [];
    const resumed: string[] = [];
    const backup = new ProjectBackup({
      store,
      artifacts: new BlobArtifactStore({ blobs: new FileBlobStore(join(dir, 'artifacts')), catalog: store }),
      ledger: {
        record: async (id) => {
          if (ledgerAway) {
            ledgerAway = false;
            throw new RuntimeError(RuntimeErrorCode.Unavailable, 'the cost ledger is away', { retriable: true });
          }
          recorded.push(id);
        },
      },
      project: projectActor({ pools: { resolve: () => undefined }, taskCheckMs: 1_000 }),
      llmCall: llmCallActor(),
      pools: () => [],
      restored: async (key) => {
        resumed.push(key);
      },
      listed: async (key) => resumed.includes(key),
    });
    await expect(backup.import(requests(archive))).rejects.toThrow(/the cost ledger is away/);
    expect(resumed).toEqual([]);

    const response = await backup.import(requests(archive));
    expect(response.project).toEqual(await source.company.getProject('acme', 'storefront'));
    expect(recorded).toHaveLength(response.ledgerEntries);
    expect(response.ledgerEntries).toBeGreaterThan(0);
    expect(resumed).toEqual(['acme/storefront']);
    // Finished, it is there: importing it once more is refused.
    await expect(backup.import(requests(archive))).rejects.toThrow(/project acme\/storefront already exists in this runtime/);
  }, 60_000);

  it('refuses a corrupt, cut-short, unknown-version or existing project archive, and stores nothing', async () => {
    const { runtime: target, dataDir } = await runtime(['acme']);
    const dataAt = archive.findIndex((part) => part.part?.$case === 'artifactData');
    const journalAt = archive.findIndex((part) => part.part?.$case === 'journal');
    const flip = (bytes: Buffer) => Buffer.from(bytes.map((byte, i) => (i === 0 ? byte ^ 0xff : byte)));
    const refusals: [string, ArchivePart[], RegExp][] = [
      [
        'an artefact byte changed',
        tampered(archive, dataAt, (part) =>
          part.part?.$case === 'artifactData' ? { part: { ...part.part, value: flip(part.part.value) } } : part,
        ),
        /the archive is corrupt: sha256 mismatch of artefact \S+: the archive says [0-9a-f]{64}, its bytes hash to [0-9a-f]{64}/,
      ],
      [
        'a journal event changed',
        tampered(archive, journalAt, (part) => {
          if (part.part?.$case !== 'journal') return part;
          const [first = Buffer.alloc(1), ...rest] = part.part.value.events;
          return { part: { $case: 'journal', value: { ...part.part.value, events: [flip(first), ...rest] } } };
        }),
        /the archive is corrupt: sha256 mismatch: its trailer says [0-9a-f]{64}, its content hashes to [0-9a-f]{64}/,
      ],
      ['its trailer missing', archive.slice(0, -1), /the archive is corrupt: it ends before its trailer: it was cut short/],
      [
        'format version 2',
        tampered(archive, 0, (part) =>
          part.part?.$case === 'header' ? { part: { $case: 'header', value: { ...part.part.value, formatVersion: 2 } } } : part,
        ),
        /the archive's format version 2 is not supported: this runtime reads version 1/,
      ],
    ];
    for (const [what, parts, message] of refusals) {
      await expect(target.company.importProject(requests(parts)), what).rejects.toThrow(message);
      expect(await target.company.getProject('acme', 'storefront'), what).toBeUndefined();
      expect(existsSync(join(dataDir, 'artifacts', 'acme', 'storefront')), what).toBe(false);
      expect((await target.ledger.totals({ client: 'acme', project: 'acme/storefront' })).calls, what).toBe(0);
    }

    // The source still has the project: importing it there again changes nothing of it.
    const before = await source.company.getProject('acme', 'storefront');
    const totals = await source.ledger.totals({ client: 'acme', project: 'acme/storefront' });
    await expect(source.company.importProject(requests(archive))).rejects.toThrow(
      /project acme\/storefront already exists in this runtime; an import never replaces a project/,
    );
    expect(await source.company.getProject('acme', 'storefront')).toEqual(before);
    expect(await source.ledger.totals({ client: 'acme', project: 'acme/storefront' })).toEqual(totals);
    await expect(source.company.exportProject('acme', 'nothing')[Symbol.asyncIterator]().next()).rejects.toThrow(
      /project acme\/nothing not found/,
    );
  }, 60_000);

  it('goes on to delivery in the runtime a project exported in the middle of a phase was imported into', async () => {
    const slow = await SimulatedServer.start({ latencyMs: 400, tokensPerSecond: Infinity, seed: 3 });
    cleanups.push(() => slow.close());
    const { runtime: first } = await runtime(['acme'], slow);
    await first.company.submitProject('submit-mid', submitCommand('acme', 'midway'));
    await eventually(async () => {
      const status = (await first.company.getProject('acme', 'midway'))?.status;
      expect(status?.currentPhase).toBe('implementation');
      expect(status?.progress?.tasksDone).toBeGreaterThanOrEqual(3);
    }, 60_000);
    const parts = await exported(first, 'acme', 'midway');
    const header = parts[0]?.part?.$case === 'header' ? parts[0].part.value : undefined;
    expect(header?.status?.phase).toBe(ProjectPhase.RUNNING);
    expect(header?.status?.progress?.percent).toBeLessThan(100);
    // The project's journal (no snapshot yet, this early) says which tasks were done and which were running.
    const events = (journals(parts)[0]?.events ?? []).map(
      (event) => JSON.parse(Buffer.from(event).toString()) as { type: string; taskId?: string },
    );
    const ids = (type: string) => new Set(events.filter((event) => event.type === type).map((event) => event.taskId));
    const doneBefore = ids('task-succeeded');
    expect([...ids('task-started')].filter((id) => !doneBefore.has(id)).length, 'tasks running at the export').toBeGreaterThan(0);
    await first.stop();

    const { runtime: second } = await runtime(['acme'], slow);
    const rerun: string[] = [];
    await second.company.watch({ namespace: 'acme', project: 'midway' }, (event) => {
      const change = event.event?.$case === 'taskStateChanged' ? event.event.value : undefined;
      if (change?.state === TaskState.RUNNING && doneBefore.has(change.taskId)) rerun.push(change.taskId);
    });
    await second.company.importProject(requests(parts));
    await eventually(async () => {
      expect((await second.company.getProject('acme', 'midway'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 90_000);
    expect(rerun, 'tasks finished before the export that ran again').toEqual([]);
    const delivered = await second.company.getProject('acme', 'midway');
    expect(delivered?.status?.cost?.usd).toBeGreaterThan(header?.status?.cost?.usd ?? Infinity);
    for (const artifact of delivered?.status?.artifacts ?? []) {
      const content = await second.company.artifact('acme', 'midway', artifact.name);
      expect(sha256(content?.bytes ?? new Uint8Array()), artifact.name).toBe(artifact.sha256);
    }
  }, 180_000);
});
