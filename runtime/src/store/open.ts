/**
 * Chooses and opens a Store implementation from configuration. Only composition roots call
 * this; everything else receives a `Store`.
 */
import { CassandraStore, type CassandraStoreOptions } from './cassandra/cassandra-store.js';
import { EmbeddedStore } from './embedded/embedded-store.js';
import type { Store } from './store.js';

/**
 * Which Store to open, discriminated on `kind`.
 * - `embedded`: a SQLite file at `path` (its directory is created when missing).
 * - `cassandra`: a keyspace on a Cassandra cluster, options as in {@link CassandraStoreOptions}
 *   (the keyspace and its tables are created when missing).
 */
export type StoreConfig = { kind: 'embedded'; path: string } | ({ kind: 'cassandra' } & Omit<CassandraStoreOptions, 'clock'>);

/**
 * Opens the configured Store, creating or migrating its schema when needed.
 *
 * @example
 * const store = await openStore({ kind: 'embedded', path: join(dataDir, 'store.db') });
 */
export async function openStore(config: StoreConfig): Promise<Store> {
  switch (config.kind) {
    case 'embedded':
      return EmbeddedStore.open({ path: config.path });
    case 'cassandra':
      return CassandraStore.open(config);
  }
}
