/**
 * The company's agent pools as one process sees them: the pools it runs itself, and the pools
 * whose replicas elsewhere report on `troupe.events`. Project actors ask it which pool a role's
 * tasks go to, and ListPools answers from it, so both hold across the cluster.
 */
import type { PoolEntry, PoolStatus } from '@troupe/proto';

export interface PoolDirectoryOptions {
  /** The pools this process runs, each with its own status. */
  local: () => readonly PoolEntry[];
  /** A replica whose last report is older than this is gone (default 15 s: three missed reports). */
  staleMs: number;
  now: () => number;
}

export const POOL_DIRECTORY_DEFAULTS = {
  staleMs: 15_000,
  now: Date.now,
} as const satisfies Partial<PoolDirectoryOptions>;

interface Report {
  namespace: string;
  status: PoolStatus;
  at: number;
}

/**
 * @example
 * const directory = new PoolDirectory({ local: () => registry.list() });
 * directory.report('acme', { pool: 'developers', role: 'developer', replica: 'agents-7f9', … });
 * directory.resolve('acme', 'developer'); // 'developers'
 */
export class PoolDirectory {
  private readonly options: PoolDirectoryOptions;
  /** The latest report of each replica elsewhere, by `<namespace>/<pool>/<replica>`. */
  private readonly reports = new Map<string, Report>();

  constructor(options: Pick<PoolDirectoryOptions, 'local'> & Partial<PoolDirectoryOptions>) {
    this.options = { ...POOL_DIRECTORY_DEFAULTS, ...options };
  }

  /** Takes a replica's report; an older one than the replica's last is ignored. */
  report(namespace: string, status: PoolStatus, at: number): void {
    const key = `${namespace}/${status.pool}/${status.replica}`;
    const last = this.reports.get(key);
    if (last === undefined || last.at <= at) this.reports.set(key, { namespace, status, at });
  }

  /**
   * The pool a role's tasks go to: the one the project names, else the namespace's pool with
   * that role (the first by name when there are several); undefined while no such pool runs.
   */
  resolve(namespace: string, role: string, named?: string): string | undefined {
    const candidates = this.list(namespace)
      .map((entry) => entry.status)
      .filter(
        (status): status is PoolStatus => status !== undefined && (named === undefined ? status.role === role : status.pool === named),
      )
      .map((status) => status.pool)
      .sort();
    return candidates[0];
  }

  /** Every running pool, each summed over its replicas here and elsewhere. */
  list(namespace?: string): PoolEntry[] {
    const pools = new Map<string, PoolEntry & { status: PoolStatus }>();
    const add = (entry: PoolEntry) => {
      const status = entry.status;
      if (status === undefined || (namespace !== undefined && entry.namespace !== namespace)) return;
      const key = `${entry.namespace}/${status.pool}`;
      const sum = pools.get(key);
      if (sum === undefined) {
        pools.set(key, { namespace: entry.namespace, status: { ...status, replica: '' } });
        return;
      }
      sum.status.replicas += status.replicas;
      sum.status.ready += status.ready;
      sum.status.busy += status.busy;
      sum.status.queueDepth += status.queueDepth;
      sum.status.tokens += status.tokens;
      sum.status.costUsd += status.costUsd;
    };
    for (const entry of this.options.local()) add(entry);
    const oldest = this.options.now() - this.options.staleMs;
    for (const [key, report] of this.reports) {
      if (report.at < oldest) this.reports.delete(key);
      else add({ namespace: report.namespace, status: report.status });
    }
    return [...pools.values()];
  }
}
