/**
 * What the embedded resource store serves: the core kinds the reconcilers and the CLI read and
 * write (Namespaces, Events, Secrets, ConfigMaps, Leases), and the troupe.dev kinds the CRDs in
 * crds/ declare. Each entry says where its REST collection lives and which API server
 * behaviours apply to it (generation, status and scale subresources).
 */

/** The scale subresource of a kind, as its CRD declares it (`.spec.replicas` style paths). */
export interface ScaleSubresource {
  specReplicasPath: string;
  statusReplicasPath: string;
  labelSelectorPath?: string;
}

/** A resource the store serves. */
export interface ServedResource {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  /** The plural resource name of the REST path, e.g. `agentpools`. */
  plural: string;
  namespaced: boolean;
  /** Custom resources carry `metadata.generation`, bumped by every write of what is not metadata or status. */
  generation: boolean;
  /** Writes to the object leave `status` alone; `/status` writes change only it. */
  statusSubresource: boolean;
  scale?: ScaleSubresource;
}

/** `troupe.dev/v1alpha1`, or `v1` for the core group. */
export function apiVersionOfResource(resource: Pick<ServedResource, 'group' | 'version'>): string {
  return resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
}

/** The key a resource is stored and routed under: `troupe.dev/agentpools`, `/secrets` for the core group. */
export function resourceKey(resource: Pick<ServedResource, 'group' | 'plural'>): string {
  return `${resource.group}/${resource.plural}`;
}

function core(kind: string, plural: string, namespaced = true): ServedResource {
  return { group: '', version: 'v1', kind, plural, namespaced, generation: false, statusSubresource: false };
}

/** The built-in kinds the store serves beside the custom resources. */
export const CORE_RESOURCES: readonly ServedResource[] = [
  core('Namespace', 'namespaces', false),
  core('Event', 'events'),
  core('Secret', 'secrets'),
  core('ConfigMap', 'configmaps'),
  {
    group: 'coordination.k8s.io',
    version: 'v1',
    kind: 'Lease',
    plural: 'leases',
    namespaced: true,
    generation: false,
    statusSubresource: false,
  },
];
