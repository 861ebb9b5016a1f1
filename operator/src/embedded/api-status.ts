/**
 * The embedded resource store's refusals as the API server words them: a metav1.Status body
 * with the same HTTP code, reason and message, so that clients (the operator's KubeClient,
 * kubectl-minded users, the troupe CLI) cannot tell the two servers apart by their errors.
 */
import { OperatorError, kubeErrorCode } from '../errors.js';

/** What a Status names the object by: the resource (plural, with its group) and the name. */
export interface StatusTarget {
  /** '' for the core group. */
  group: string;
  /** The plural resource, e.g. `agentpools`. */
  resource: string;
  name: string;
}

/** One field a 422 Invalid refers to, as metav1.StatusCause. */
export interface StatusCause {
  reason: string;
  message: string;
  field: string;
}

/** metav1.Status as the API server writes it. */
export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string; causes?: StatusCause[] };
  code: number;
}

/** A request the store refuses; `status` is the body to answer with. */
export class StatusError extends OperatorError {
  override name = 'StatusError';

  constructor(readonly status: Status) {
    super(kubeErrorCode(status.code), status.message);
  }
}

/** `agentpools.troupe.dev`, or `secrets` for the core group: how the API server names a resource in messages. */
function qualifiedResource(group: string, resource: string): string {
  return group === '' ? resource : `${resource}.${group}`;
}

function failure(code: number, reason: string, message: string, details?: Status['details']): StatusError {
  return new StatusError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  });
}

function detailsOf(target: StatusTarget): Status['details'] {
  return { name: target.name, ...(target.group === '' ? {} : { group: target.group }), kind: target.resource };
}

/** 404 NotFound: `agentpools.troupe.dev "developers" not found`. */
export function notFound(target: StatusTarget): StatusError {
  return failure(404, 'NotFound', `${qualifiedResource(target.group, target.resource)} "${target.name}" not found`, detailsOf(target));
}

/** 404 NotFound for a path that names no resource the store serves. */
export function noSuchResource(): StatusError {
  return failure(404, 'NotFound', 'the server could not find the requested resource');
}

/** 409 AlreadyExists. */
export function alreadyExists(target: StatusTarget): StatusError {
  return failure(
    409,
    'AlreadyExists',
    `${qualifiedResource(target.group, target.resource)} "${target.name}" already exists`,
    detailsOf(target),
  );
}

/** 409 Conflict: a write made on a resourceVersion that is no longer the stored one. */
export function conflict(target: StatusTarget): StatusError {
  return failure(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(target.group, target.resource)} "${target.name}": the object has been modified; please apply your changes to the latest version and try again`,
    detailsOf(target),
  );
}

/** 410 Gone (reason Expired): the history no longer reaches back to `resourceVersion`. */
export function expired(resourceVersion: string, oldest: number): StatusError {
  return failure(410, 'Expired', `too old resource version: ${resourceVersion} (${oldest})`);
}

/**
 * 422 Invalid, with `message` as the API server builds it
 * (`AgentPool.troupe.dev "x" is invalid: spec.replicas: Invalid value: …`).
 */
export function invalid(target: { group: string; kind: string; name: string }, message: string, causes: StatusCause[]): StatusError {
  const details = { name: target.name, ...(target.group === '' ? {} : { group: target.group }), kind: target.kind, causes };
  return failure(422, 'Invalid', message, details);
}

/** 400 BadRequest: the body or the query cannot be understood. */
export function badRequest(message: string): StatusError {
  return failure(400, 'BadRequest', message);
}

/** 401 Unauthorized: no bearer token, or not the store's. */
export function unauthorized(): StatusError {
  return failure(401, 'Unauthorized', 'Unauthorized');
}

/** 405 MethodNotAllowed. */
export function methodNotAllowed(message: string): StatusError {
  return failure(405, 'MethodNotAllowed', message);
}

/** 415 UnsupportedMediaType: a patch type the store does not speak. */
export function unsupportedMediaType(contentType: string): StatusError {
  return failure(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json; got ${contentType}`,
  );
}

/** 500 InternalError: a failure of the store itself (the message says what failed). */
export function internalError(message: string): StatusError {
  return failure(500, 'InternalError', `Internal error occurred: ${message}`);
}
