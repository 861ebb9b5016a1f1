/**
 * Errors of the LLM layer: RuntimeError subclasses with the context that locates a failure
 * (provider, budget scope, task), and their plain-data form for crossing a worker thread or
 * the journal, where class identity is lost.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';

type ErrorOptions = { retriable?: boolean; cause?: unknown };

/** A failure of the LLM layer; `provider` names the ModelProvider when one was involved. */
export class LlmError extends RuntimeError {
  override name = 'LlmError';

  constructor(code: RuntimeErrorCode, message: string, options: ErrorOptions & { provider?: string } = {}) {
    super(code, options.provider === undefined ? message : `${options.provider}: ${message}`, options);
    this.provider = options.provider;
  }

  readonly provider: string | undefined;
}

/** A provider answered with an error status, timed out, or could not be reached. */
export class ProviderError extends LlmError {
  override name = 'ProviderError';

  constructor(provider: string, message: string, options: ErrorOptions & { status?: number; retryAfterMs?: number } = {}) {
    super(options.status === 429 ? RuntimeErrorCode.RateLimited : RuntimeErrorCode.ProviderFailed, message, { ...options, provider });
    this.detail = message;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** The message without the provider's name in front. */
  readonly detail: string;
  /** The HTTP status, when the provider answered at all. */
  readonly status: number | undefined;
  /** How long the provider asked us to wait (Retry-After), when it said. */
  readonly retryAfterMs: number | undefined;
}

/** The RPM/TPM limiter had no room within the wait allowed. */
export class RateLimitedError extends LlmError {
  override name = 'RateLimitedError';

  constructor(
    readonly bucket: string,
    readonly retryAfterMs: number,
    options: ErrorOptions = {},
  ) {
    super(RuntimeErrorCode.RateLimited, `rate limit ${bucket} has no room for ${retryAfterMs} ms`, { ...options, retriable: true });
  }
}

/** A provider's circuit is open: the call was not made. */
export class CircuitOpenError extends LlmError {
  override name = 'CircuitOpenError';

  constructor(
    provider: string,
    readonly retryAfterMs: number,
  ) {
    super(RuntimeErrorCode.CircuitOpen, `circuit open after repeated failures; next probe in ${retryAfterMs} ms`, {
      provider,
      retriable: true,
    });
  }
}

/** The levels budgets nest in, outermost first. */
export type BudgetLevel = 'org' | 'client' | 'project';

/** What a project does at its budget's limit (Project.spec.budget.onExceeded). */
export type OnExceeded = 'Pause' | 'Fail';

/**
 * A call would go past a budget. `scope` is the budget at its limit (the project's own, or its
 * client's or org's); `onExceeded` is the project's policy, which applies either way.
 */
export class BudgetExceededError extends LlmError {
  override name = 'BudgetExceededError';

  constructor(
    readonly scope: { level: BudgetLevel; id: string },
    readonly project: string,
    readonly onExceeded: OnExceeded,
    /** Why, e.g. `has $0.0400 left of $5.0000; the call may cost $0.0600`. */
    readonly detail: string,
  ) {
    super(
      RuntimeErrorCode.BudgetExceeded,
      `project ${project} ${onExceeded === 'Pause' ? 'paused' : 'failed'}: ${scope.level} ${scope.id} ${detail}`,
    );
  }
}

/** A task produced the same output `repeats` times in a row. */
export class StuckLoopError extends LlmError {
  override name = 'StuckLoopError';

  constructor(
    readonly taskId: string,
    readonly repeats: number,
  ) {
    super(RuntimeErrorCode.StuckLoop, `task ${taskId} produced the same output ${repeats} times in a row`);
  }
}

/** The output was not the structure asked for, after every repair prompt. */
export class MalformedOutputError extends LlmError {
  override name = 'MalformedOutputError';

  constructor(
    readonly taskId: string,
    readonly reason: string,
    readonly attempts: number,
  ) {
    super(RuntimeErrorCode.MalformedOutput, `task ${taskId} output still malformed after ${attempts} attempts: ${reason}`);
  }
}

/** A task that cannot run as given. */
export class InvalidTaskError extends LlmError {
  override name = 'InvalidTaskError';

  constructor(
    readonly taskId: string,
    readonly reason: string,
  ) {
    super(RuntimeErrorCode.InvalidTask, `task ${taskId}: ${reason}`);
  }
}

/** An error as data, for a worker thread or the journal: code, message and the context that rebuilds its class. */
export type SerializedError =
  | {
      kind: 'provider';
      code: string;
      message: string;
      detail: string;
      retriable: boolean;
      provider: string;
      status?: number;
      retryAfterMs?: number;
    }
  | { kind: 'rate-limited'; code: string; message: string; bucket: string; retryAfterMs: number }
  | { kind: 'circuit-open'; code: string; message: string; provider: string; retryAfterMs: number }
  | {
      kind: 'budget';
      code: string;
      message: string;
      scope: { level: BudgetLevel; id: string };
      project: string;
      onExceeded: OnExceeded;
      detail: string;
    }
  | { kind: 'stuck-loop'; code: string; message: string; taskId: string; repeats: number }
  | { kind: 'malformed'; code: string; message: string; taskId: string; reason: string; attempts: number }
  | { kind: 'invalid-task'; code: string; message: string; taskId: string; reason: string }
  | { kind: 'runtime'; code: string; message: string; retriable: boolean };

/** Turns an error into data; anything not of this layer becomes a `runtime` error with its message. */
export function serializeError(error: unknown): SerializedError {
  // Anything not of this runtime is a bug or an unwrapped I/O failure: nothing says a retry would help.
  const base = {
    code: error instanceof RuntimeError ? error.code : RuntimeErrorCode.Unavailable,
    message: error instanceof Error ? error.message : String(error),
  };
  if (error instanceof ProviderError) {
    return {
      kind: 'provider',
      ...base,
      detail: error.detail,
      retriable: error.retriable,
      provider: error.provider ?? '',
      status: error.status,
      retryAfterMs: error.retryAfterMs,
    };
  }
  if (error instanceof RateLimitedError) return { kind: 'rate-limited', ...base, bucket: error.bucket, retryAfterMs: error.retryAfterMs };
  if (error instanceof CircuitOpenError)
    return { kind: 'circuit-open', ...base, provider: error.provider ?? '', retryAfterMs: error.retryAfterMs };
  if (error instanceof BudgetExceededError) {
    return { kind: 'budget', ...base, scope: error.scope, project: error.project, onExceeded: error.onExceeded, detail: error.detail };
  }
  if (error instanceof StuckLoopError) return { kind: 'stuck-loop', ...base, taskId: error.taskId, repeats: error.repeats };
  if (error instanceof MalformedOutputError)
    return { kind: 'malformed', ...base, taskId: error.taskId, reason: error.reason, attempts: error.attempts };
  if (error instanceof InvalidTaskError) return { kind: 'invalid-task', ...base, taskId: error.taskId, reason: error.reason };
  return { kind: 'runtime', ...base, retriable: error instanceof RuntimeError && error.retriable };
}

/** Rebuilds the error `serializeError` described, with its class, code and context. */
export function deserializeError(data: SerializedError): RuntimeError {
  switch (data.kind) {
    case 'provider':
      return new ProviderError(data.provider, data.detail, {
        retriable: data.retriable,
        status: data.status,
        retryAfterMs: data.retryAfterMs,
      });
    case 'rate-limited':
      return new RateLimitedError(data.bucket, data.retryAfterMs);
    case 'circuit-open':
      return new CircuitOpenError(data.provider, data.retryAfterMs);
    case 'budget':
      return new BudgetExceededError(data.scope, data.project, data.onExceeded, data.detail);
    case 'stuck-loop':
      return new StuckLoopError(data.taskId, data.repeats);
    case 'malformed':
      return new MalformedOutputError(data.taskId, data.reason, data.attempts);
    case 'invalid-task':
      return new InvalidTaskError(data.taskId, data.reason);
    case 'runtime':
      return new RuntimeError(data.code as RuntimeErrorCode, data.message, { retriable: data.retriable });
  }
}
