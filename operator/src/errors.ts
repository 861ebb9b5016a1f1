/** Stable codes of operator failures, for logs, Events and the retry decision. */
export const OperatorErrorCode = {
  /** Options given to a constructor or read from flags are invalid; the message names the key. */
  InvalidOptions: 'INVALID_OPTIONS',
  /** The API server has no such object. */
  NotFound: 'NOT_FOUND',
  /** A write lost an optimistic-concurrency race or the object exists already; re-read and retry. */
  Conflict: 'CONFLICT',
  /** A watch or list asked for a resourceVersion the API server no longer has (HTTP 410); relist. */
  Gone: 'GONE',
  /** The API server refused the operator's credentials or RBAC denies the verb. */
  Forbidden: 'FORBIDDEN',
  /** The API server refused the request as malformed or invalid (HTTP 400/422). */
  Rejected: 'REJECTED',
  /** The API server did not answer, or answered 429/5xx. */
  KubeUnavailable: 'KUBE_UNAVAILABLE',
  /** The runtime's gRPC service did not answer in time or is not serving. */
  RuntimeUnavailable: 'RUNTIME_UNAVAILABLE',
  /** The runtime refused a command (invalid argument, failed precondition). */
  RuntimeRejected: 'RUNTIME_REJECTED',
  /** The runtime refused the operator's token (expired, signed with another secret, or without the rights); retried, as a renewed token passes. */
  RuntimeForbidden: 'RUNTIME_FORBIDDEN',
  /** Kafka's admin API failed while creating or growing a pool topic. */
  KafkaUnavailable: 'KAFKA_UNAVAILABLE',
  /** A reconcile cannot succeed by retrying; the controller records it and stops. */
  Terminal: 'TERMINAL',
  /** A CRD in crds/ cannot be loaded, or uses a schema feature the embedded validator does not enforce. */
  CrdInvalid: 'CRD_INVALID',
  /** An object names an apiVersion and kind that no loaded CRD serves, or names none. */
  UnknownKind: 'UNKNOWN_KIND',
} as const;

export type OperatorErrorCode = (typeof OperatorErrorCode)[keyof typeof OperatorErrorCode];

/**
 * The base error of @troupe/operator: a stable `code`, whether retrying can help, and the cause.
 * Subclasses add the context that locates the failure.
 */
export class OperatorError extends Error {
  override name = 'OperatorError';
  readonly retriable: boolean;

  constructor(
    readonly code: OperatorErrorCode,
    message: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.retriable = options.retriable ?? false;
  }
}

/** A failed request to the Kubernetes API server, with the HTTP status and the Status reason it answered. */
export class KubeApiError extends OperatorError {
  override name = 'KubeApiError';

  constructor(
    readonly status: number,
    readonly reason: string,
    readonly request: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    const code = kubeErrorCode(status);
    super(code, `${request}: ${message}`, {
      ...options,
      retriable: code === OperatorErrorCode.Conflict || code === OperatorErrorCode.KubeUnavailable,
    });
  }
}

/** The one place HTTP statuses of the API server become operator error codes (0: no answer at all). */
export function kubeErrorCode(status: number): OperatorErrorCode {
  switch (status) {
    case 404:
      return OperatorErrorCode.NotFound;
    case 409:
      return OperatorErrorCode.Conflict;
    case 410:
      return OperatorErrorCode.Gone;
    case 401:
    case 403:
      return OperatorErrorCode.Forbidden;
    case 400:
    case 422:
      return OperatorErrorCode.Rejected;
    default:
      return OperatorErrorCode.KubeUnavailable;
  }
}

/**
 * Thrown by a reconciler when retrying cannot help (the spec asks for something impossible, the
 * runtime refused it): the controller records `reason` as a Warning Event and stops retrying the
 * key until the object changes.
 */
export class TerminalError extends OperatorError {
  override name = 'TerminalError';

  constructor(
    /** CamelCase reason for the Warning Event, e.g. `RuntimeRejected`. */
    readonly reason: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(OperatorErrorCode.Terminal, message, { ...options, retriable: false });
  }
}

/**
 * Refuses an option at construction: throws INVALID_OPTIONS naming the component and the key
 * unless `ok`.
 *
 * @example
 * checkOption(Number.isInteger(ms) && ms > 0, 'WorkQueue', 'backoff.initialMs', 'must be a positive integer', ms);
 */
export function checkOption(ok: boolean, component: string, key: string, rule: string, got?: unknown): asserts ok {
  if (!ok)
    throw new OperatorError(
      OperatorErrorCode.InvalidOptions,
      `${component} option ${key} ${rule}${got === undefined ? '' : `, got ${JSON.stringify(got)}`}`,
    );
}

export function isPositiveInteger(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0;
}

/** True for the API server's "no such object", the one failure most callers expect. */
export function isNotFound(error: unknown): boolean {
  return error instanceof OperatorError && error.code === OperatorErrorCode.NotFound;
}

/** Normalises anything thrown into an Error, once, at a boundary. */
export function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
