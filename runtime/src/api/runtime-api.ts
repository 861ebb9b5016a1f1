/**
 * The runtime's API, in process: what the gRPC RuntimeService serves, what the gateway and the
 * embedded reconcilers call. Messages are the protobuf types of proto/, so every surface speaks
 * the same contract.
 */
import type {
  Approve,
  ArchivePart,
  CancelProject,
  Event,
  ImportProjectRequest,
  ImportProjectResponse,
  PoolEntry,
  ProjectSummary,
  ScalePool,
  SubmitProject,
} from '@troupe/proto';

/** Stops a watch; resolves once no more events will be delivered. */
export type StopWatching = () => Promise<void>;

/** Which events a watcher wants: a namespace (tenant), one project of it, or all. */
export interface WatchFilter {
  namespace?: string;
  project?: string;
}

/** A stored artefact's content. */
export interface ArtifactContent {
  name: string;
  kind: string;
  sha256: string;
  bytes: Uint8Array;
}

/** What one project's role bought on one model. */
export interface InvoiceLine {
  /** `<namespace>/<name>`. */
  project: string;
  role: string;
  model: string;
  /** LLM calls bought (answers from the response cache are not billed). */
  calls: number;
  inputTokens: number;
  outputTokens: number;
  costUSD: number;
}

/** A client's bill, from the cost ledger. */
export interface Invoice {
  client: string;
  /** The namespace the invoice covers; absent when it covers every namespace. */
  namespace?: string;
  /** RFC 3339. */
  issuedAt: string;
  currency: 'USD';
  /** Sorted by project, role and model. */
  lines: InvoiceLine[];
  total: Pick<InvoiceLine, 'calls' | 'inputTokens' | 'outputTokens' | 'costUSD'>;
}

export interface RuntimeApi {
  /**
   * Creates or updates a project. `commandId` makes the call idempotent: repeating a command
   * id changes nothing.
   */
  submitProject(commandId: string, command: SubmitProject): Promise<void>;
  cancelProject(commandId: string, command: CancelProject): Promise<void>;
  /** Approves the gate of `command.phase`; refused with a clear error when the project does not wait on it. */
  approve(commandId: string, command: Approve): Promise<void>;
  scalePool(commandId: string, command: ScalePool): Promise<void>;
  getProject(namespace: string, name: string): Promise<ProjectSummary | undefined>;
  /** Projects of `namespace`, or of all namespaces when it is undefined. */
  listProjects(namespace?: string): Promise<ProjectSummary[]>;
  listPools(namespace?: string): Promise<PoolEntry[]>;
  /** Every state change matching the filter, in sequence order per project, from now on. */
  watch(filter: WatchFilter, onEvent: (event: Event) => void): Promise<StopWatching>;
  artifact(namespace: string, project: string, name: string): Promise<ArtifactContent | undefined>;
  /** The invoice of `client`'s projects in `namespace` (every namespace when undefined). */
  invoice(client: string, namespace?: string): Promise<Invoice>;
  /** The project's archive (proto backup.proto), part by part; NotFound when the runtime does not know the project. */
  exportProject(namespace: string, name: string): AsyncIterable<ArchivePart>;
  /**
   * Restores a project from its archive, one part per request; the first request may name
   * another namespace to restore it into. Refused with InvalidArgument (an unknown format
   * version, a corrupt or cut-short archive) or AlreadyExists (the project exists), having
   * stored nothing.
   */
  importProject(requests: AsyncIterable<ImportProjectRequest>): Promise<ImportProjectResponse>;
}
