/**
 * The one place where errors become HTTP statuses and wire error bodies. Anything that is not a
 * RuntimeError is an internal error: its message stays in the log, not in the response. What a
 * response says is redacted (security/redact.ts): an error may quote a secret it came near.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { redact } from '../security/redact.js';
import type { ApiError, ErrorMessage } from './protocol.js';

const STATUS: Partial<Record<RuntimeErrorCode, number>> = {
  [RuntimeErrorCode.InvalidArgument]: 400,
  [RuntimeErrorCode.Unauthenticated]: 401,
  [RuntimeErrorCode.PermissionDenied]: 403,
  [RuntimeErrorCode.NotFound]: 404,
  [RuntimeErrorCode.Conflict]: 409,
  [RuntimeErrorCode.TooLarge]: 413,
  [RuntimeErrorCode.ResourceExhausted]: 429,
  [RuntimeErrorCode.RateLimited]: 429,
  [RuntimeErrorCode.BudgetExceeded]: 409,
  [RuntimeErrorCode.Unavailable]: 503,
  [RuntimeErrorCode.Closed]: 503,
  [RuntimeErrorCode.AskTimeout]: 504,
};

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** An error as the HTTP API answers it: status line, and the JSON body. */
export interface ErrorReply {
  status: string;
  body: ApiError;
  /** Whether the caller should see it in the server log (it is not their fault). */
  internal: boolean;
}

/** Maps anything thrown to its HTTP answer. */
export function errorReply(error: unknown): ErrorReply {
  const { code, message, status } = classify(error);
  return { status: `${status} ${REASON[status] ?? ''}`.trim(), body: { error: { code, message } }, internal: status >= 500 };
}

/** Maps anything thrown to a stream `error` message about `topic`. */
export function errorMessage(error: unknown, topic?: string): ErrorMessage {
  const { code, message } = classify(error);
  return topic === undefined ? { type: 'error', code, message } : { type: 'error', code, message, topic };
}

function classify(error: unknown): { code: string; message: string; status: number } {
  if (error instanceof RuntimeError) {
    const status = STATUS[error.code] ?? 500;
    return { code: error.code, message: status === 500 ? 'internal error' : redact(error.message), status };
  }
  return { code: 'INTERNAL', message: 'internal error', status: 500 };
}
