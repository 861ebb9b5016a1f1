/**
 * Backups of projects: the archive of one project (backup.proto) read from what the runtime
 * keeps durably — the project actor's journal, the journals of its tasks' LLM calls, its
 * artefacts, and the ledger entries those calls' journals record — and a project restored from
 * one. An import takes the whole archive in and checks it before it writes anything, so a
 * refused import leaves the runtime as it was; the project actor's journal is written last,
 * and only if the project does not exist.
 */
import { createHash } from 'node:crypto';
import {
  BudgetAction,
  Deliverable,
  type ActorJournal,
  type ArchivePart,
  type ImportProjectRequest,
  type ImportProjectResponse,
  type LedgerEntry,
  type PoolEntry,
  type SubmitProject,
} from '@troupe/proto';
import { jsonCodec, type ActorType } from '../actors/actor.js';
import type { ArtifactStore } from '../domain/artifacts.js';
import { summary } from '../domain/project-events.js';
import type { ProjectEvent, ProjectMessage, ProjectState } from '../domain/project.types.js';
import { poolTaskId } from '../domain/task-runner.js';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import type { LlmCallEvent, LlmCallMessage, LlmCallReply, LlmCallState } from '../llm/journal.js';
import type { CallAccount } from '../llm/ledger.js';
import type { ClientLedgers } from '../llm/ledger.actor.js';
import { withDefaults } from '../llm/options.js';
import { toNanoUSD } from '../llm/pricing.js';
import type { ActorRecord, ActorRef, Store, TurnWrite } from '../store/store.js';
import { ARCHIVE_FORMAT_VERSION, ArchiveDigest, ArchiveReceiver, type ReceivedArchive } from './archive.js';
import { relocate } from './relocate.js';

export interface ProjectBackupOptions {
  store: Store;
  artifacts: ArtifactStore;
  /** The durable cost ledger, where an imported project's LLM calls are recorded. */
  ledger: Pick<ClientLedgers, 'record'>;
  /** The project actor type, whose journal an archive holds first. */
  project: ActorType<ProjectState, ProjectMessage, ProjectEvent, unknown>;
  /** The journaled LLM call's actor type. */
  llmCall: ActorType<LlmCallState, LlmCallMessage, LlmCallEvent, LlmCallReply>;
  /** The agent pools of a namespace: the ids of its tasks' LLM calls name the pool that made them. */
  pools: (namespace: string) => readonly PoolEntry[];
  /**
   * Told once a project's journal is restored (with the archive's sha256, for idempotent message
   * ids): makes the project known to listings and resumes the tasks it was running.
   */
  restored: (key: string, archive: string) => Promise<void>;
  /** Whether a project is in the runtime's listings, which `restored` puts it in last: an import that got so far is over. */
  listed: (key: string) => Promise<boolean>;
  /** Bytes of artefact data per archive part (default 256 KiB, well under the gRPC server's 1 MiB request limit). */
  chunkBytes: number;
  /** The largest archive an import accepts (default 256 MiB): it is held in memory until it is checked. */
  maxImportBytes: number;
  clock: () => number;
}

export const PROJECT_BACKUP_DEFAULTS = {
  chunkBytes: 256 << 10,
  maxImportBytes: 256 << 20,
  clock: Date.now,
} as const satisfies Partial<ProjectBackupOptions>;

/** Ledger entries per archive part. */
const ENTRIES_PER_PART = 1_000;

/** A namespace name, as Kubernetes allows it. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A journaled LLM call of a project, with the ledger entry it records. */
interface CallJournal {
  ref: ActorRef;
  record: ActorRecord;
  entry: LedgerEntry;
}

/**
 * @example
 * const backup = new ProjectBackup({ store, artifacts, ledger, project, llmCall, pools, restored, listed });
 * for await (const part of backup.export('acme', 'shop')) send(part);
 * const imported = await backup.import(requests);
 */
export class ProjectBackup {
  readonly options: ProjectBackupOptions;

  constructor(options: Omit<ProjectBackupOptions, keyof typeof PROJECT_BACKUP_DEFAULTS> & Partial<ProjectBackupOptions>) {
    this.options = withDefaults(PROJECT_BACKUP_DEFAULTS, options);
    for (const key of ['chunkBytes', 'maxImportBytes'] as const) {
      if (!Number.isInteger(this.options[key]) || this.options[key] <= 0) {
        throw new RuntimeError(
          RuntimeErrorCode.InvalidOptions,
          `ProjectBackup option ${key} must be a positive integer, got ${this.options[key]}`,
        );
      }
    }
  }

  /**
   * The project's archive, part by part; NotFound when the runtime does not know the project.
   * A project that runs meanwhile is archived as its journal stood when the export began, and
   * its artefacts as they are when they are read: the archive records the sha256 of those bytes.
   */
  async *export(namespace: string, name: string): AsyncGenerator<ArchivePart> {
    const { store, artifacts, project, chunkBytes } = this.options;
    const key = `${namespace}/${name}`;
    const ref = { type: project.type, id: key };
    const record = await store.load(ref);
    const state = fold(
      project,
      key,
      record.snapshot?.state,
      record.events.map((event) => event.data),
    );
    if (state.spec === undefined) throw new RuntimeError(RuntimeErrorCode.NotFound, `project ${key} not found`);
    const calls = await this.calls(state);
    const entries = calls.map((call) => call.entry);
    const digest = new ArchiveDigest();
    const part = (body: NonNullable<ArchivePart['part']>): ArchivePart => {
      const next = { part: body };
      digest.add(next);
      return next;
    };

    yield part({
      $case: 'header',
      value: {
        formatVersion: ARCHIVE_FORMAT_VERSION,
        project: submitted(state),
        status: summary(state).status,
        exportedAt: this.options.clock(),
        journals: 1 + calls.length,
        artifacts: state.artifacts.length,
        artifactBytes: state.artifacts.reduce((sum, artifact) => sum + artifact.bytes, 0),
        ledgerEntries: entries.length,
      },
    });
    yield part({ $case: 'journal', value: journalOf(ref, record) });
    for (const call of calls) yield part({ $case: 'journal', value: journalOf(call.ref, call.record) });
    for (const artifact of state.artifacts) {
      const bytes = await artifacts.get(namespace, name, artifact.name);
      if (bytes === undefined)
        throw new RuntimeError(RuntimeErrorCode.NotFound, `artefact ${artifact.name} of project ${key} is missing from the artefact store`);
      // The bytes as they are now: a project running meanwhile may have rewritten the file.
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      yield part({ $case: 'artifact', value: { ...artifact, sha256, bytes: bytes.byteLength } });
      for (let at = 0; at < bytes.byteLength; at += chunkBytes) {
        yield part({
          $case: 'artifactData',
          value: Buffer.from(bytes.buffer, bytes.byteOffset + at, Math.min(chunkBytes, bytes.byteLength - at)),
        });
      }
    }
    for (let at = 0; at < entries.length; at += ENTRIES_PER_PART) {
      yield part({ $case: 'ledger', value: { entries: entries.slice(at, at + ENTRIES_PER_PART) } });
    }
    yield { part: { $case: 'trailer', value: { sha256: digest.hex(), parts: digest.parts } } };
  }

  /**
   * Restores a project from its archive's parts: the first request may name another namespace
   * to restore it into. Refused with InvalidArgument (a format version it does not read, a
   * corrupt or cut-short archive) or AlreadyExists (the project is in the runtime already),
   * having stored nothing. An import of the same archive that stopped part-way (the cost ledger
   * or the broker away) is finished by a retry.
   */
  async import(requests: AsyncIterable<ImportProjectRequest>): Promise<ImportProjectResponse> {
    const { store, artifacts, project, llmCall } = this.options;
    const receiver = new ArchiveReceiver(this.options.maxImportBytes);
    let namespace: string | undefined;
    for await (const request of requests) {
      namespace ??= request.namespace;
      if (request.part === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'an ImportProject request carries no part');
      receiver.add(request.part);
    }
    const received = receiver.finish();
    const source = received.header.project;
    const target = namespace || source.namespace;
    if (!DNS_LABEL.test(target)) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidArgument,
        `namespace "${target}" is not a DNS label (lowercase letters, digits and -, at most 63)`,
      );
    }
    const archive: ReceivedArchive = target === source.namespace ? received : relocate(received, target, { project, llmCall });
    const key = `${target}/${source.name}`;
    const [projectJournal, ...callJournals] = archive.journals;
    if (projectJournal?.actorType !== project.type || projectJournal.actorId !== key)
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `the archive's first journal is not that of project ${key}`);
    const unknown = callJournals.find((journal) => journal.actorType !== llmCall.type);
    if (unknown !== undefined) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidArgument,
        `the archive holds the journal of ${unknown.actorType}/${unknown.actorId}; an import restores only ${project.type} and ${llmCall.type} journals`,
      );
    }

    // Every check comes before the first write, so that a refused import stores nothing. A
    // project journal that an import of this archive wrote, that nothing changed since, of a
    // project not listed yet, is that import's, stopped before its ledger records or resume:
    // this one finishes it.
    const stored = await store.load(refOf(projectJournal));
    const unfinished =
      isStored(stored) &&
      sameJournal(stored, projectJournal) &&
      (await this.importedFrom(projectJournal, archive.sha256)) &&
      !(await this.options.listed(key));
    if (isStored(stored) && !unfinished)
      throw new RuntimeError(
        RuntimeErrorCode.AlreadyExists,
        `project ${key} already exists in this runtime; an import never replaces a project`,
      );
    const toWrite: ActorJournal[] = [];
    for (const journal of callJournals) {
      const stored = await store.load(refOf(journal));
      // Written already by an import of this archive that stopped before the project's journal.
      if (!isStored(stored)) toWrite.push(journal);
      else if (!sameJournal(stored, journal))
        throw new RuntimeError(RuntimeErrorCode.AlreadyExists, `the journal of LLM call ${journal.actorId} exists with other content`);
    }

    for (const { artifact, bytes } of archive.artifacts) await artifacts.put(target, source.name, artifact.name, artifact.kind, bytes);
    for (const journal of toWrite) await store.commitTurn(restoreWrite(journal, archive.sha256));
    if (!unfinished) {
      try {
        await store.commitTurn(restoreWrite(projectJournal, archive.sha256));
      } catch (error) {
        // A conflict is someone else's project, or this write that timed out and landed all the same.
        const conflict = error instanceof RuntimeError && error.code === RuntimeErrorCode.Conflict;
        if (!conflict) throw error;
        if (!(await this.importedFrom(projectJournal, archive.sha256)))
          throw new RuntimeError(RuntimeErrorCode.AlreadyExists, `project ${key} was created while it was imported`, { cause: error });
      }
    }
    // Ids from the archive's sha256, so an import that is retried records each call once.
    for (const [i, entry] of archive.ledger.entries()) {
      const callId = callJournals[i]?.actorId ?? `${key}/imported/${i}`;
      await this.options.ledger.record(`import/${archive.sha256}/ledger/${i}`, callId, ledgerRecord(entry, key));
    }
    await this.options.restored(key, archive.sha256);

    const state = fold(project, key, projectJournal.snapshot?.state, projectJournal.events);
    return {
      project: summary(state),
      journals: archive.journals.length,
      artifacts: archive.artifacts.length,
      artifactBytes: archive.artifacts.reduce((sum, { bytes }) => sum + bytes.byteLength, 0),
      ledgerEntries: archive.ledger.length,
    };
  }

  /** Whether the stored journal of `journal`'s actor was written by an import of the archive `sha256`. */
  private async importedFrom(journal: ActorJournal, sha256: string): Promise<boolean> {
    const input = importInput(sha256);
    return (await this.options.store.appliedInputs(refOf(journal), [input])).has(input);
  }

  /**
   * The journaled LLM calls of the project's tasks that hold a result. Their ids are those the
   * pool replicas and AgentPool give them: `<pool>/<project>/<task id>/<step>/<attempt>` (the
   * pool and the project as `<namespace>/<name>`, the task id as poolTaskId makes it), attempts
   * counting from 0 with repair prompts. Any pool that may have run the task is tried.
   */
  private async calls(state: ProjectState): Promise<CallJournal[]> {
    const { store, llmCall } = this.options;
    const key = `${state.namespace}/${state.name}`;
    const spec = state.spec;
    const pools = this.options.pools(state.namespace);
    const calls: CallJournal[] = [];
    for (const task of Object.values(state.tasks)) {
      const named = spec?.pools[task.role];
      const candidates = pools.filter(({ status }) => status !== undefined && (status.pool === named || status.role === task.role));
      const taskId = poolTaskId({ namespace: state.namespace, project: state.name, incarnation: state.incarnation, task });
      for (const { status } of candidates) {
        for (let attempt = 0; ; attempt += 1) {
          const ref = { type: llmCall.type, id: `${state.namespace}/${status?.pool}/${key}/${taskId}/${task.step}/${attempt}` };
          const record = await store.load(ref);
          if (!isStored(record)) break;
          const entry = ledgerEntry(llmCall, ref.id, record, {
            client: spec?.client ?? '',
            project: key,
            role: task.role,
            phase: task.phase,
          });
          // A call still being bought holds only a lease, of no use anywhere else.
          if (entry !== undefined) calls.push({ ref, record, entry });
        }
      }
    }
    return calls;
  }
}

/** Folds a journal into state, as the actor system does when it activates an actor. */
function fold<S>(
  type: ActorType<S, never, unknown, unknown>,
  id: string,
  snapshot: Uint8Array | undefined,
  events: readonly Uint8Array[],
): S {
  const codec = type.codec ?? jsonCodec;
  let state = snapshot === undefined ? type.initialState(id) : (codec.decode(snapshot) as S);
  for (const event of events) state = type.apply(state, codec.decode(event));
  return state;
}

function isStored(record: ActorRecord): boolean {
  return record.seq > 0 || record.snapshot !== undefined;
}

function refOf(journal: ActorJournal): ActorRef {
  return { type: journal.actorType, id: journal.actorId };
}

function journalOf(ref: ActorRef, record: ActorRecord): ActorJournal {
  return {
    actorType: ref.type,
    actorId: ref.id,
    seq: record.seq,
    snapshot: record.snapshot === undefined ? undefined : { seq: record.snapshot.seq, state: Buffer.from(record.snapshot.state) },
    events: record.events.map((event) => Buffer.from(event.data)),
  };
}

/** The input id of an import's writes: the archive's sha256, so that a retried import is recognised. */
function importInput(archive: string): string {
  return `import/${archive}`;
}

/**
 * The turn that restores a journal: the snapshot, as of before the first event, then the events
 * after it. The journal is numbered anew from there, so it is `seq - snapshot.seq` long.
 */
function restoreWrite(journal: ActorJournal, archive: string): TurnWrite {
  return {
    actor: refOf(journal),
    expectedSeq: 0,
    events: journal.events,
    input: { id: importInput(archive) },
    ...(journal.snapshot === undefined ? {} : { snapshot: { seq: 0, state: journal.snapshot.state } }),
  };
}

/** Whether a stored journal is the one an import of `journal` writes. */
function sameJournal(stored: ActorRecord, journal: ActorJournal): boolean {
  const same = (a: Uint8Array | undefined, b: Uint8Array | undefined) =>
    a === b || (a !== undefined && b !== undefined && Buffer.from(a).equals(b));
  return (
    same(stored.snapshot?.state, journal.snapshot?.state) &&
    stored.events.length === journal.events.length &&
    stored.events.every((event, i) => same(event.data, journal.events[i]))
  );
}

/** The ledger entry of a journaled call, or undefined while it holds no result. */
function ledgerEntry(
  type: ActorType<LlmCallState, LlmCallMessage, LlmCallEvent, LlmCallReply>,
  id: string,
  record: ActorRecord,
  task: CallAccount,
): LedgerEntry | undefined {
  const codec = type.codec ?? jsonCodec;
  const { result } = fold(
    type,
    id,
    record.snapshot?.state,
    record.events.map((event) => event.data),
  );
  if (result === undefined) return undefined;
  const bought = record.events.map((event) => codec.decode(event.data) as LlmCallEvent).find((event) => event.type === 'bought');
  // Whom the call was bought for, from its `bought` event; the task's account if a snapshot folded it away.
  const account = bought?.type === 'bought' ? bought.account : task;
  const cached = result.source === 'cache';
  return {
    org: account.org ?? '',
    client: account.client,
    role: account.role,
    phase: account.phase,
    provider: result.provider,
    model: result.model,
    inputTokens: result.usage.inputTokens,
    outputTokens: result.usage.outputTokens,
    nanoUsd: cached ? 0 : toNanoUSD(result.costUSD),
    priced: result.priced,
    cached,
  };
}

/** The cost ledger's entry of an archived one: the archive holds them in the order of its call journals. */
function ledgerRecord(entry: LedgerEntry, project: string) {
  return {
    account: { ...(entry.org === '' ? {} : { org: entry.org }), client: entry.client, project, role: entry.role, phase: entry.phase },
    provider: entry.provider,
    model: entry.model,
    usage: { inputTokens: entry.inputTokens, outputTokens: entry.outputTokens },
    cost: { nanoUSD: entry.nanoUsd, priced: entry.priced },
    cached: entry.cached,
  };
}

/** The project as it was last submitted, as a SubmitProject command would carry it (Secrets by name, as the spec names them). */
function submitted(state: ProjectState): SubmitProject {
  const spec = state.spec;
  const secretRef = (secret: { name: string } | undefined) => (secret === undefined ? undefined : { name: secret.name, key: '' });
  const git = spec?.delivery?.git;
  return {
    namespace: state.namespace,
    name: state.name,
    uid: state.uid,
    generation: state.generation,
    spec:
      spec === undefined
        ? undefined
        : {
            client: spec.client,
            brief: spec.brief,
            workflow: spec.workflow,
            deliverables: spec.deliverables.map((deliverable) => Deliverable[deliverable.toUpperCase() as keyof typeof Deliverable]),
            budget: {
              maxCostUsd: spec.budget.maxCostUSD,
              maxTokens: spec.budget.maxTokens,
              onExceeded: spec.budget.onExceeded === 'Fail' ? BudgetAction.FAIL : BudgetAction.PAUSE,
            },
            pools: spec.pools,
            approvals: spec.approvals,
            approvalTimeout: spec.approvalTimeout ?? '',
            priority: spec.priority,
            deadline: spec.deadline,
            suspend: spec.suspend,
            delivery: git === undefined ? undefined : { git: { url: git.url, branch: git.branch, secretRef: secretRef(git.secretRef) } },
            notify:
              spec.notify === undefined
                ? undefined
                : {
                    webhooks: spec.notify.webhooks.map((hook) => ({ url: hook.url, secretRef: secretRef(hook.secretRef) })),
                    email: [...spec.notify.email],
                  },
          },
    workflowPhases: state.workflow.map((phase) => ({
      name: phase.name,
      role: phase.role,
      needs: [...phase.needs],
      produces: [...phase.produces],
      fanOut: phase.fanOut,
      approval: phase.approval,
      loop: phase.loop === undefined ? undefined : { backTo: phase.loop.backTo, maxIterations: phase.loop.maxIterations },
    })),
  };
}
