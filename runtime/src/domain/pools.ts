/**
 * The agent pools this node runs, by namespace and name: AgentPool resources applied by the
 * operator's reconciler (or the embedded one) become LLM worker pools here.
 */
import type { PoolEntry } from '@troupe/proto';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import type { AgentPool, AgentPoolSpec } from '../llm/agent-pool.js';

export interface PoolResource {
  namespace: string;
  name: string;
  replicas: number;
  spec: AgentPoolSpec;
}

interface Entry {
  resource: PoolResource;
  pool: AgentPool;
}

export class PoolRegistry {
  private readonly pools = new Map<string, Entry>();

  constructor(private readonly create: (name: string, spec: AgentPoolSpec) => AgentPool) {}

  /** Creates the pool, or replaces it when its spec changed (tasks running on the old one finish there). */
  async apply(resource: PoolResource): Promise<void> {
    const key = `${resource.namespace}/${resource.name}`;
    const existing = this.pools.get(key);
    if (existing && JSON.stringify(existing.resource.spec) === JSON.stringify(resource.spec)) {
      existing.resource = resource;
      return;
    }
    this.pools.set(key, { resource, pool: this.create(key, resource.spec) });
    await existing?.pool.close();
  }

  async remove(namespace: string, name: string): Promise<void> {
    const key = `${namespace}/${name}`;
    const existing = this.pools.get(key);
    this.pools.delete(key);
    await existing?.pool.close();
  }

  /** Scales a pool: replicas are pods in a cluster; here they only show in its status. */
  scale(namespace: string, name: string, replicas: number): void {
    const entry = this.pools.get(`${namespace}/${name}`);
    if (entry === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `no AgentPool ${name} in namespace ${namespace}`);
    entry.resource = { ...entry.resource, replicas };
  }

  /** The pool for a role: the one the project names, else the namespace's pool with that role. */
  resolve(namespace: string, role: string, name?: string): AgentPool {
    const entry =
      name === undefined
        ? [...this.pools.values()].find(({ resource }) => resource.namespace === namespace && resource.spec.role === role)
        : this.pools.get(`${namespace}/${name}`);
    if (entry === undefined) {
      const which = name === undefined ? `with role ${role}` : `named ${name}`;
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `no AgentPool ${which} in namespace ${namespace}`);
    }
    return entry.pool;
  }

  list(namespace?: string): PoolEntry[] {
    return [...this.pools.values()]
      .filter(({ resource }) => namespace === undefined || resource.namespace === namespace)
      .map(({ resource, pool }) => {
        const stats = pool.stats;
        return {
          namespace: resource.namespace,
          status: {
            pool: resource.name,
            role: resource.spec.role,
            replicas: resource.replicas,
            ready: resource.replicas,
            busy: stats.running,
            queueDepth: stats.queued,
            tokens: 0,
            costUsd: 0,
          },
        };
      });
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map(({ pool }) => pool.close()));
    this.pools.clear();
  }
}
