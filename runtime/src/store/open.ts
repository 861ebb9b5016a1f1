/**
 * Chooses and opens a Store implementation from configuration. Only composition roots call
 * this; everything else receives a `Store`.
 */
import { EmbeddedStore } from './embedded/embedded-store.js';
import type { Store } from './store.js';

/**
 * Which Store to open, discriminated on `kind`.
 * - `embedded`: a SQLite file at `path` (its directory is created when missing).
 */
export type StoreConfig = { kind: 'embedded'; path: string };

/**
 * Opens the configured Store, creating or migrating its schema when needed.
 *
 * @example
 * const store = await openStore({ kind: 'embedded', path: join(dataDir, 'store.db') });
 */
export async function openStore(config: StoreConfig): Promise<Store> {
  switch (config.kind) {
    case 'embedded':
      return new EmbeddedStore({ path: config.path });
  }
}
