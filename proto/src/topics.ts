// Names of the topics whose names carry data (architecture: "Topics"), for every process that
// produces to them or consumes them.

/** The topic that carries a pool's work: `troupe.pool.<namespace>.<pool>`. */
export function poolTopic(namespace: string, pool: string): string {
  return `troupe.pool.${namespace}.${pool}`;
}
