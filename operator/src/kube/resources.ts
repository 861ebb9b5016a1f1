/** The built-in Kubernetes resources the operator uses; each one is listed in rbac/clusterrole.yaml. */
import { resourceType } from './client.js';
import type { CoreEvent, Deployment, Lease, Secret } from './types.js';

export const Deployments = resourceType<Deployment>('apps', 'v1', 'Deployment', 'deployments');
export const Secrets = resourceType<Secret>('', 'v1', 'Secret', 'secrets');
export const Events = resourceType<CoreEvent>('', 'v1', 'Event', 'events');
export const Leases = resourceType<Lease>('coordination.k8s.io', 'v1', 'Lease', 'leases');
