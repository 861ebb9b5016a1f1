/**
 * StoreError: how the Cassandra Store reports a failed CQL request — the runtime's error codes,
 * plus the statement text so a log line says which request failed.
 */
import cassandra from 'cassandra-driver';

import { RuntimeError, RuntimeErrorCode, toError } from '../../errors.js';

const { responseErrorCodes } = cassandra.types;

/** A failed request to Cassandra; `cql` is the statement (or a batch's statements, one a line). */
export class StoreError extends RuntimeError {
  override name = 'StoreError';

  constructor(
    code: RuntimeErrorCode,
    readonly cql: string,
    message: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(code, message, options);
  }
}

/** Server answers that say "not now" rather than "never": the same request may succeed later. */
const TRANSIENT_RESPONSES = new Set<number>([
  responseErrorCodes.unavailableException,
  responseErrorCodes.overloaded,
  responseErrorCodes.isBootstrapping,
  responseErrorCodes.truncateError,
  responseErrorCodes.writeTimeout,
  responseErrorCodes.readTimeout,
  responseErrorCodes.readFailure,
  responseErrorCodes.writeFailure,
]);

/**
 * Wraps what the driver threw, once, at the store's boundary.
 *
 * A conditional write (a Paxos round) that timed out may still be applied later by whichever
 * coordinator next touches the partition, so its outcome is unknown: it is reported as a
 * retriable CONFLICT, which makes the caller reload before it retries; a retried turn whose
 * first try did land is then refused as DUPLICATE_INPUT instead of being applied twice.
 *
 * Everything else is UNAVAILABLE, retriable when the server said "not now" rather than "never".
 */
export function toStoreError(thrown: unknown, cql: string, conditional: boolean): StoreError {
  const error = toError(thrown);
  const { errors } = cassandra;
  const timedOut =
    error instanceof errors.OperationTimedOutError ||
    (error instanceof errors.ResponseError && error.code === responseErrorCodes.writeTimeout);
  if (conditional && timedOut) {
    return new StoreError(
      RuntimeErrorCode.Conflict,
      cql,
      `a conditional write timed out and may or may not have been applied: ${error.message}`,
      { retriable: true, cause: error },
    );
  }
  const retriable =
    timedOut ||
    error instanceof errors.NoHostAvailableError ||
    error instanceof errors.BusyConnectionError ||
    (error instanceof errors.ResponseError && TRANSIENT_RESPONSES.has(error.code));
  return new StoreError(RuntimeErrorCode.Unavailable, cql, `cassandra: ${describe(error)}`, { retriable, cause: error });
}

/** The driver's "no host" message embeds each host's error with its stack; one line per host reads better. */
function describe(error: Error): string {
  if (!(error instanceof cassandra.errors.NoHostAvailableError)) return error.message;
  const perHost = Object.entries((error.innerErrors ?? {}) as Record<string, unknown>).map(
    ([host, inner]) => `${host}: ${toError(inner).message}`,
  );
  return perHost.length === 0 ? error.message : `no host could serve the request (${perHost.join('; ')})`;
}
