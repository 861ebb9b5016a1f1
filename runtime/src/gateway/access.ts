/**
 * Who may see and do what: the roles, a token's claims as an Identity, topic keys parsed and
 * checked against it, and the namespace and action checks. Every tenancy decision of the
 * gateway's HTTP API and stream and of the gRPC RuntimeService is made here.
 */
import type { TokenClaims } from '@troupe/proto';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import type { Identity, TopicKey, TopicKind } from './protocol.js';

/** Namespaces are DNS labels. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Project and pool names are Kubernetes object names (DNS subdomains). */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** Workflow phase and role names, as the CRDs' patterns allow them. */
const LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** The namespace of a topic that spans all of them. */
export const ALL_NAMESPACES = '*';

/** A parsed topic key. */
export type Topic =
  | { kind: Exclude<TopicKind, 'project'>; namespace: string; key: TopicKey }
  | { kind: 'project'; namespace: string; name: string; key: TopicKey };

/** What a caller may do; a `client` only in its tenant's namespace. */
export type Action = 'read' | 'approve' | 'scale' | 'submit' | 'cancel';

/** A role's reach: every namespace or its tenant's, and what it may do there. */
export interface RoleRights {
  allNamespaces: boolean;
  actions: readonly Action[];
}

/**
 * The roles, the same on every entry point (the gateway's HTTP API and stream, the gRPC
 * RuntimeService):
 *
 * | role     | namespaces   | read | approve | scale | submit, cancel |
 * |----------|--------------|------|---------|-------|----------------|
 * | `admin`  | all          | yes  | yes     | yes   | yes            |
 * | `sre`    | all          | yes  | no      | yes   | no             |
 * | `client` | its tenant's | yes  | yes     | no    | no             |
 *
 * Submitting and cancelling are the operator's, with an admin token: a project is a Project
 * resource and the runtime follows what the resource says, so a client changes the resource,
 * never the runtime's copy of it. An SRE keeps the company running — sees everything, scales
 * pools — but takes none of the client's decisions (approving a phase).
 */
export const ROLES = {
  admin: { allNamespaces: true, actions: ['read', 'approve', 'scale', 'submit', 'cancel'] },
  sre: { allNamespaces: true, actions: ['read', 'scale'] },
  client: { allNamespaces: false, actions: ['read', 'approve'] },
} as const satisfies Record<Identity['role'], RoleRights>;

/** How a refusal names each action. */
const DOING: Record<Action, string> = {
  read: 'read projects',
  approve: 'approve gates',
  scale: 'scale pools',
  submit: 'submit projects',
  cancel: 'cancel projects',
};

/** The identity a verified token grants. */
export function identityOf(claims: TokenClaims): Identity {
  const role = claims.tenant !== undefined ? 'client' : claims.role;
  const may = (action: Action) => (ROLES[role].actions as readonly Action[]).includes(action);
  return {
    sub: claims.sub,
    role,
    tenant: claims.tenant ?? null,
    can: { allNamespaces: ROLES[role].allNamespaces, approve: may('approve'), scale: may('scale') },
    expiresAt: claims.exp * 1000,
  };
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

/** Throws InvalidArgument unless `value` is a phase or role name. */
export function checkLabel(value: string, what: string): string {
  if (!LABEL.test(value))
    throw new RuntimeError(
      RuntimeErrorCode.InvalidArgument,
      `${what} "${clip(value)}" is not a phase or role name (lowercase letters, digits and dashes, starting with a letter, at most 63)`,
    );
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

/**
 * Throws PermissionDenied unless the identity may take `action` in `namespace`: a namespace it
 * may not read is refused first, naming the namespace; then an action its role lacks, naming
 * the roles that have it.
 */
export function authorize(identity: Identity, action: Action, namespace: string): void {
  checkCanRead(identity, namespace);
  if ((ROLES[identity.role].actions as readonly Action[]).includes(action)) return;
  const allowed = (Object.keys(ROLES) as Identity['role'][]).filter((role) => (ROLES[role].actions as readonly Action[]).includes(action));
  throw new RuntimeError(
    RuntimeErrorCode.PermissionDenied,
    `role ${identity.role} may not ${DOING[action]}; a token of role ${allowed.join(' or ')} may`,
  );
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
