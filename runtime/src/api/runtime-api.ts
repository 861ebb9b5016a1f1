/**
 * The runtime's API, in process: what the gRPC RuntimeService serves, what the gateway and the
 * embedded reconcilers call. Messages are the protobuf types of proto/, so every surface speaks
 * the same contract.
 */
import type { Approve, CancelProject, Event, PoolEntry, ProjectSummary, ScalePool, SubmitProject } from '@troupe/proto';

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
}
