/**
 * Writing status the way every controller here does: through the status subresource, only when
 * it differs from what the cache holds, and guarded by the resourceVersion the decision was
 * made on, so a decision taken on a stale cache fails with Conflict and is retried.
 */
import { isDeepStrictEqual } from 'node:util';
import type { KubeClient, ResourceType } from '../kube/client.js';
import type { KubeObject } from '../kube/types.js';

/**
 * Patches `status` onto `object` unless it is already what the object holds. Returns the
 * object as stored afterwards.
 */
export async function updateStatus<T extends KubeObject & { status?: object }>(
  client: KubeClient,
  type: ResourceType<T>,
  object: T,
  status: NonNullable<T['status']>,
): Promise<T> {
  const current = withoutUndefined(object.status ?? {});
  const next = withoutUndefined(status);
  if (isDeepStrictEqual(current, next)) return object;
  // A merge patch keeps what it does not mention; a field the new status drops must be nulled.
  const removed = Object.fromEntries(
    Object.keys(current)
      .filter((key) => !(key in next))
      .map((key) => [key, null]),
  );
  const { namespace = '', name, resourceVersion } = object.metadata;
  return client.patch(
    type,
    namespace,
    name,
    { metadata: { resourceVersion }, status: { ...removed, ...next } },
    { strategy: 'merge', subresource: 'status' },
  );
}

/** JSON drops undefined fields; comparisons must too. */
function withoutUndefined(value: object): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
}
