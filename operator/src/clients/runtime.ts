/**
 * What the operator needs from the runtime, as an interface: the controllers depend on this,
 * and only the composition root picks the implementation (gRPC to RuntimeService). Messages are
 * the protobuf types of @troupe/proto. Failures are OperatorErrors: RUNTIME_UNAVAILABLE
 * (retriable) or RUNTIME_REJECTED (the runtime refused the command).
 */
import type { Approve, CancelProject, PoolEntry, ProjectStatus, SubmitProject, WatchProjectResponse } from '@troupe/proto';
import type { OperatorError } from '../errors.js';

/** An open WatchProject stream. */
export interface ProjectStream {
  /** Ends the stream; `onEnd` is not called for a close asked for here. */
  close(): void;
}

export interface ProjectStreamHandlers {
  /** The snapshot first, then each event. */
  onUpdate(update: WatchProjectResponse): void;
  /** The stream ended on the runtime's side, with the error if it failed. */
  onEnd(error: OperatorError | undefined): void;
}

export interface RuntimeClient {
  /** Creates or updates a project; repeating a `commandId` changes nothing. */
  submitProject(commandId: string, command: SubmitProject): Promise<void>;
  /** Cancels a project; resolves also when the runtime does not know it. */
  cancelProject(commandId: string, command: CancelProject): Promise<void>;
  /** Releases the approval gate of `command.phase`; RUNTIME_REJECTED when the project does not wait on it. */
  approve(commandId: string, command: Approve): Promise<void>;
  /** The runtime's view of a project, or undefined when it does not know the project (yet). */
  getProject(namespace: string, name: string): Promise<ProjectStatus | undefined>;
  /** Streams a project's changes until `close` or the runtime ends the stream. */
  watchProject(namespace: string, name: string, handlers: ProjectStreamHandlers): ProjectStream;
  /** Every pool's capacity and load, of one namespace or (when undefined) of all. */
  listPools(namespace?: string): Promise<PoolEntry[]>;
  close(): void;
}
