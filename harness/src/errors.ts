/** Stable codes of harness failures; tests and scripts may match on them. */
export const HarnessErrorCode = {
  MissingTool: 'MISSING_TOOL',
  BuildFailed: 'BUILD_FAILED',
  StartFailed: 'START_FAILED',
  NotRunning: 'NOT_RUNNING',
  /** Output a test reads (e.g. a /metrics exposition) is not in the format it should be. */
  InvalidOutput: 'INVALID_OUTPUT',
} as const;

export type HarnessErrorCode = (typeof HarnessErrorCode)[keyof typeof HarnessErrorCode];

/**
 * The one error the harness throws. Its message says what is missing and how to get it,
 * so a failed `npm test` on a new machine reads as an instruction rather than a stack trace.
 */
export class HarnessError extends Error {
  override readonly name = 'HarnessError';
  readonly retriable = false;

  constructor(
    readonly code: HarnessErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
