/**
 * The troupe CLI's exit codes, which scripts can rely on, and the one place a failure becomes
 * one: a CliError carries its code; an OperatorError from the Kubernetes API or the runtime is
 * mapped by what it means to the user (refused, not found, unreachable).
 */
import { KubeApiError, OperatorError, OperatorErrorCode, toError } from '../errors.js';

export const ExitCode = {
  Ok: 0,
  /** The server or the validator refused the input (invalid manifest, conflict, forbidden). */
  Refused: 1,
  /** The command line is wrong: unknown command or flag, missing argument. */
  Usage: 2,
  NotFound: 3,
  /** The API server or the runtime cannot be reached or is not serving. */
  Unavailable: 4,
  /** A wait (`--wait`, `-w` on one project, delete's finalizer) ran out of time. */
  TimedOut: 5,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure the CLI reports as one line on stderr and exits with `exitCode`. */
export class CliError extends Error {
  override name = 'CliError';

  constructor(
    readonly exitCode: ExitCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

/** Shorthand for usage errors. */
export function usage(message: string): CliError {
  return new CliError(ExitCode.Usage, message);
}

const BY_CODE: Partial<Record<OperatorErrorCode, ExitCode>> = {
  [OperatorErrorCode.NotFound]: ExitCode.NotFound,
  [OperatorErrorCode.Conflict]: ExitCode.Refused,
  [OperatorErrorCode.Rejected]: ExitCode.Refused,
  [OperatorErrorCode.Forbidden]: ExitCode.Refused,
  [OperatorErrorCode.RuntimeRejected]: ExitCode.Refused,
  [OperatorErrorCode.InvalidOptions]: ExitCode.Usage,
  [OperatorErrorCode.UnknownKind]: ExitCode.Refused,
  [OperatorErrorCode.KubeUnavailable]: ExitCode.Unavailable,
  [OperatorErrorCode.RuntimeUnavailable]: ExitCode.Unavailable,
  [OperatorErrorCode.Gone]: ExitCode.Unavailable,
};

/** The exit code and the one-line message for anything thrown. */
export function describeFailure(thrown: unknown): { exitCode: ExitCode; message: string } {
  if (thrown instanceof CliError) return { exitCode: thrown.exitCode, message: thrown.message };
  if (thrown instanceof KubeApiError) {
    // The request is noise to a user; the API server's own words name the problem.
    const said = thrown.message.startsWith(`${thrown.request}: `) ? thrown.message.slice(thrown.request.length + 2) : thrown.message;
    if (thrown.status === 0) return { exitCode: ExitCode.Unavailable, message: `cannot reach the API server: ${said}` };
    return { exitCode: BY_CODE[thrown.code] ?? ExitCode.Refused, message: `Error from server (${thrown.reason}): ${said}` };
  }
  const error = toError(thrown);
  const exitCode = error instanceof OperatorError ? (BY_CODE[error.code] ?? ExitCode.Refused) : ExitCode.Refused;
  return { exitCode, message: error.message.split('\n')[0] ?? error.message };
}
