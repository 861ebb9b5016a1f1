/**
 * AgentPools that run inside the runtime's own process, as an interface: in embedded mode there
 * is no kubelet to run a Deployment's pods, so the AgentPool controller hands the pool's spec to
 * the runtime, sends it ScalePool when the replicas change, and reads readiness back from
 * ListPools. Only the composition root (embedded `npm start`) picks the implementation.
 */
import type { ScalePool } from '@troupe/proto';
import type { AgentPool } from '../api/v1alpha1/agentpool.types.js';

/** What `apply` had to do. */
export type RuntimePoolChange = 'started' | 'updated' | 'unchanged';

export interface RuntimePools {
  /** Starts the pool with its spec, or brings a running pool to a changed spec; the replicas are `scale`'s. */
  apply(pool: AgentPool): Promise<RuntimePoolChange>;
  /** Sets a running pool's replicas; repeating a `commandId` changes nothing. */
  scale(commandId: string, command: ScalePool): Promise<void>;
  /** Stops the pool; resolves also when it was not running. */
  remove(namespace: string, name: string): Promise<void>;
}
