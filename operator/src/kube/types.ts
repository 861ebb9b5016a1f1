/**
 * The Kubernetes objects the operator reads and writes, typed as the JSON the API server sends.
 * client-node's models type timestamps as `Date` (its ObjectSerializer converts them); this
 * operator passes JSON through untouched, so only its models without timestamps we read
 * (the pod template parts) are borrowed, and the rest is declared here.
 */
import type { V1DeploymentSpec, V1LabelSelector } from '@kubernetes/client-node';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  /** RFC 3339. */
  creationTimestamp?: string;
  /** RFC 3339; set once a delete was asked for and finalizers hold the object. */
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

/** Any object of the API: what informers cache and the client sends. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  /** RFC 3339. */
  lastTransitionTime: string;
  /** CamelCase constant from controllers/conditions.ts. */
  reason: string;
  message: string;
}

export interface DeploymentCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

export interface Deployment extends KubeObject {
  spec: V1DeploymentSpec & { selector: V1LabelSelector };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    conditions?: DeploymentCondition[];
  };
}

export interface Secret extends KubeObject {
  type?: string;
  /** Key → base64 value. The Secret informer keeps the keys and drops the values. */
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** coordination.k8s.io/v1 Lease: the leader election record. */
export interface Lease extends KubeObject {
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    /** RFC 3339 with microseconds (metav1.MicroTime). */
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface ObjectReference {
  apiVersion?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}

/** core/v1 Event: what `kubectl describe` lists under Events. */
export interface CoreEvent extends KubeObject {
  involvedObject: ObjectReference;
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  count?: number;
  firstTimestamp?: string;
  lastTimestamp?: string;
  source?: { component?: string; host?: string };
  reportingComponent?: string;
  reportingInstance?: string;
  action?: string;
}

/** A List answer: the items and the resourceVersion to watch from. */
export interface ObjectList<T extends KubeObject> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

/** `namespace/name`, the work-queue key of a namespaced object. */
export type ObjectKey = string;

/** The work-queue key of an object. */
export function keyOf(object: KubeObject): ObjectKey {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

/** Splits a key made by `keyOf`. */
export function splitKey(key: ObjectKey): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
