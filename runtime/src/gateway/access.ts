/**
 * Who may see and do what: a token's claims as an Identity, topic keys parsed and checked
 * against it, and the namespace and action checks of the HTTP API. Every tenancy decision of
 * the gateway is made here.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import type { Identity, TopicKey, TopicKind } from './protocol.js';
import type { TokenClaims } from './tokens.js';

/** Namespaces are DNS labels. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Project and pool names are Kubernetes object names (DNS subdomains). */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** The namespace of a topic that spans all of them. */
export const ALL_NAMESPACES = '*';

/** A parsed topic key. */
export type Topic =
  | { kind: Exclude<TopicKind, 'project'>; namespace: string; key: TopicKey }
  | { kind: 'project'; namespace: string; name: string; key: TopicKey };

/** The identity a verified token grants. */
export function identityOf(claims: TokenClaims): Identity {
  const expiresAt = claims.exp * 1000;
  if (claims.tenant !== undefined) {
    return {
      sub: claims.sub,
      role: 'client',
      tenant: claims.tenant,
      can: { allNamespaces: false, approve: true, scale: false },
      expiresAt,
    };
  }
  const admin = claims.role === 'admin';
  return { sub: claims.sub, role: claims.role, tenant: null, can: { allNamespaces: true, approve: admin, scale: true }, expiresAt };
}

/** Throws InvalidArgument unless `value` is a namespace name. */
export function checkNamespace(value: string, what = 'namespace'): string {
  if (!NAMESPACE.test(value))
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `${what} "${clip(value)}" is not a namespace name (a DNS label)`);
  return value;
}

/** Throws InvalidArgument unless `value` is a Kubernetes object name. */
export function checkName(value: string, what: string): string {
  if (!OBJECT_NAME.test(value))
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `${what} "${clip(value)}" is not a valid object name`);
  return value;
}

/** Throws PermissionDenied unless the identity may read `namespace` (`*`: every namespace). */
export function checkCanRead(identity: Identity, namespace: string): void {
  if (identity.can.allNamespaces || namespace === identity.tenant) return;
  const what = namespace === ALL_NAMESPACES ? 'every namespace' : `namespace ${namespace}`;
  throw new RuntimeError(RuntimeErrorCode.PermissionDenied, `a token of tenant ${identity.tenant} may not read ${what}`);
}

/** The namespace a listing reads: the one asked for, else the tenant's own, else every namespace. */
export function readScope(identity: Identity, asked: string | undefined): string | undefined {
  const namespace = asked === undefined || asked === '' ? (identity.tenant ?? undefined) : checkNamespace(asked);
  checkCanRead(identity, namespace ?? ALL_NAMESPACES);
  return namespace;
}

/** Throws PermissionDenied unless the identity may approve gates of projects in `namespace`. */
export function checkCanApprove(identity: Identity, namespace: string): void {
  checkCanRead(identity, namespace);
  if (!identity.can.approve) throw new RuntimeError(RuntimeErrorCode.PermissionDenied, `role ${identity.role} may not approve gates`);
}

/** Throws PermissionDenied unless the identity may scale pools. */
export function checkCanScale(identity: Identity): void {
  if (!identity.can.scale)
    throw new RuntimeError(RuntimeErrorCode.PermissionDenied, `role ${identity.role} may not scale pools; an sre or admin token may`);
}

/** Parses a topic key, throwing InvalidArgument when it names no topic. */
export function parseTopic(key: unknown): Topic {
  if (typeof key !== 'string' || key.length > 300)
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'topic must be a string of at most 300 characters');
  const parts = key.split('/');
  const [kind, namespace, name] = parts;
  const namespaceOk = namespace === ALL_NAMESPACES || (namespace !== undefined && NAMESPACE.test(namespace));
  if ((kind === 'projects' || kind === 'pools' || kind === 'costs') && parts.length === 2 && namespaceOk) {
    return { kind, namespace: namespace!, key: key as TopicKey };
  }
  if (kind === 'project' && parts.length === 3 && namespace !== ALL_NAMESPACES && namespaceOk && OBJECT_NAME.test(name ?? '')) {
    return { kind, namespace: namespace!, name: name!, key: key as TopicKey };
  }
  throw new RuntimeError(
    RuntimeErrorCode.InvalidArgument,
    `topic "${clip(key)}" is not one of projects/<namespace|*>, project/<namespace>/<name>, pools/<namespace|*>, costs/<namespace|*>`,
  );
}

/** Parses a topic key and checks that the identity may follow it. */
export function authorizeTopic(identity: Identity, key: unknown): Topic {
  const topic = parseTopic(key);
  checkCanRead(identity, topic.namespace);
  return topic;
}

function clip(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}
