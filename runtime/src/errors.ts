/** Stable codes of runtime failures, for logs, metrics and the gRPC/HTTP mapping. */
export const RuntimeErrorCode = {
  /** A write came from a partition owner whose epoch is older than the stored one. */
  Fenced: 'FENCED',
  /** An actor's journal moved on since the turn read it (another writer, or a replay). */
  Conflict: 'CONFLICT',
  /** An input was already applied to the actor; its redelivered copy is skipped. */
  DuplicateInput: 'DUPLICATE_INPUT',
  /** An ask got no reply in time. */
  AskTimeout: 'ASK_TIMEOUT',
  /** A turn's handler threw; retried, then dead-lettered. */
  TurnFailed: 'TURN_FAILED',
  /** A message names an actor type no one registered. */
  UnknownActorType: 'UNKNOWN_ACTOR_TYPE',
  /** A request to a store or broker failed; `retriable` says whether trying again may help. */
  Unavailable: 'UNAVAILABLE',
  /** Stored data failed a checksum or could not be decoded. */
  Corrupt: 'CORRUPT',
  /** An argument of a call is invalid; the message names it. */
  InvalidArgument: 'INVALID_ARGUMENT',
  /** Options given to a constructor are invalid. */
  InvalidOptions: 'INVALID_OPTIONS',
  /** The component was closed and takes no more work. */
  Closed: 'CLOSED',
  /** An LLM call would take a project, client or org past its budget; the project pauses or fails. */
  BudgetExceeded: 'BUDGET_EXCEEDED',
  /** An LLM provider answered with an error or did not answer; `retriable` says whether trying again may help. */
  ProviderFailed: 'PROVIDER_FAILED',
  /** A provider (HTTP 429) or the RPM/TPM limiter refused for now; retriable after a wait. */
  RateLimited: 'RATE_LIMITED',
  /** A provider's circuit breaker is open after repeated failures; calls fail fast until it half-opens. */
  CircuitOpen: 'CIRCUIT_OPEN',
  /** A task keeps producing the same LLM output. */
  StuckLoop: 'STUCK_LOOP',
  /** An LLM kept answering without the structure that was asked for, repair prompts included. */
  MalformedOutput: 'MALFORMED_OUTPUT',
  /** An agent task cannot run as given (e.g. its prompt names a variable it does not supply). */
  InvalidTask: 'INVALID_TASK',
  /** The caller sent no credentials, or a token that is malformed, forged or expired. */
  Unauthenticated: 'UNAUTHENTICATED',
  /** The caller's token does not allow the operation (another tenant's namespace, a role without the right). */
  PermissionDenied: 'PERMISSION_DENIED',
  /** What the request names does not exist (a project, an artefact, a route). */
  NotFound: 'NOT_FOUND',
  /** What the request would create exists already (e.g. the project an archive holds). */
  AlreadyExists: 'ALREADY_EXISTS',
  /** A request body or stream message is larger than the limit. */
  TooLarge: 'TOO_LARGE',
  /** A per-connection or per-server limit (connections, subscriptions) is reached; retriable later. */
  ResourceExhausted: 'RESOURCE_EXHAUSTED',
  /** A webhook, email or git push of a project's delivery failed; `retriable` says whether trying again may help. */
  DeliveryFailed: 'DELIVERY_FAILED',
} as const;

export type RuntimeErrorCode = (typeof RuntimeErrorCode)[keyof typeof RuntimeErrorCode];

/**
 * The base error of @troupe/runtime: a stable `code`, whether retrying can help, and the cause.
 * Subclasses add the context that locates the failure.
 */
export class RuntimeError extends Error {
  override name = 'RuntimeError';

  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.retriable = options.retriable ?? false;
  }

  readonly retriable: boolean;
}

/** A failure tied to one actor. */
export class ActorError extends RuntimeError {
  override name = 'ActorError';

  constructor(
    code: RuntimeErrorCode,
    readonly actor: { type: string; id: string },
    message: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(code, `${actor.type}/${actor.id}: ${message}`, options);
  }
}

/** A failure tied to a topic partition of a transport. */
export class TransportError extends RuntimeError {
  override name = 'TransportError';

  constructor(
    code: RuntimeErrorCode,
    readonly topic: string,
    readonly partition: number | undefined,
    message: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(code, `${topic}${partition === undefined ? '' : `[${partition}]`}: ${message}`, options);
  }
}

/** Codes of failures of what work runs on — a store, the broker, an actor's answer — that may pass. */
const PASSING_CODES: readonly string[] = [
  RuntimeErrorCode.Unavailable,
  RuntimeErrorCode.AskTimeout,
  RuntimeErrorCode.Fenced,
  RuntimeErrorCode.Conflict,
  RuntimeErrorCode.Closed,
];

/** Whether trying again later may help: the error says so, or it is a failure of something underneath that may pass. */
export function isPassing(error: unknown): boolean {
  return error instanceof RuntimeError && (error.retriable || PASSING_CODES.includes(error.code));
}

/** Normalises anything thrown into an Error, once, at a boundary. */
export function toError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown));
}
