/**
 * Chooses and opens the ClusterServices implementation from configuration. Only composition
 * roots (and test fixtures) call this; everything else receives `ClusterServices`.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { EmbeddedServices } from './embedded/embedded-services.js';
import { RedisServices } from './redis/redis-services.js';
import type { ClusterServices } from './services.js';

/**
 * Which ClusterServices to open, discriminated on `kind`.
 * - `embedded`: in-process buckets, cache and pub/sub, for a single-process runtime.
 * - `redis`: shared by every node through the Redis at `url`; keys and channels start with
 *   `keyPrefix` (default `troupe:`), as in {@link RedisServices}.
 */
export type ServicesConfig = { kind: 'embedded' } | { kind: 'redis'; url: string; keyPrefix?: string };

/**
 * Opens the configured ClusterServices; for Redis, once both its connections are up. Configs may
 * come from JSON, so an unknown `kind` is refused at run time too.
 *
 * @example
 * const services = await openServices({ kind: 'redis', url: 'redis://redis:6379' });
 */
export async function openServices(config: ServicesConfig): Promise<ClusterServices> {
  switch (config.kind) {
    case 'embedded':
      return EmbeddedServices.open();
    case 'redis':
      return RedisServices.open({ url: config.url, keyPrefix: config.keyPrefix });
    default:
      return unknownKind(config);
  }
}

// Typed `never`, so adding a member to ServicesConfig without a case fails to compile.
function unknownKind(config: never): never {
  const { kind } = config as { kind: unknown };
  throw new RuntimeError(
    RuntimeErrorCode.InvalidOptions,
    `services config \`kind\` ${JSON.stringify(kind)} is not one of: embedded, redis`,
  );
}
