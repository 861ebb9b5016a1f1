/**
 * The bearer tokens of the gateway and the gRPC API, as the runtime uses them: the token format
 * of @troupe/proto (part of the RuntimeService contract, shared with the operator and the CLI),
 * with its secret registered for redaction and its failures as RuntimeErrors — Unauthenticated
 * (HTTP 401, gRPC UNAUTHENTICATED), InvalidArgument for bad claims, InvalidOptions for a bad
 * secret or lifetime — which gateway/errors.ts and api/grpc-server.ts map.
 */
import { TokenError, TokenErrorCode, Tokens as BearerTokens, type NewClaims, type TokenClaims, type TokensOptions } from '@troupe/proto';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { registerSecret } from '../security/redact.js';

const CODES = {
  [TokenErrorCode.InvalidOptions]: RuntimeErrorCode.InvalidOptions,
  [TokenErrorCode.InvalidClaims]: RuntimeErrorCode.InvalidArgument,
  [TokenErrorCode.Unauthenticated]: RuntimeErrorCode.Unauthenticated,
} as const satisfies Record<TokenErrorCode, RuntimeErrorCode>;

/**
 * Signs and verifies bearer tokens (see @troupe/proto's Tokens for the options and defaults).
 *
 * @example
 * const tokens = new Tokens({ secret: process.env.TROUPE_TOKEN_SECRET! });
 * const token = tokens.sign({ sub: 'alice@acme', tenant: 'acme' });
 * tokens.verify(token); // { sub: 'alice@acme', tenant: 'acme', exp: … }
 */
export class Tokens {
  private readonly tokens: BearerTokens;

  constructor(options: TokensOptions) {
    this.tokens = asRuntimeError(() => new BearerTokens(options));
    if (typeof options.secret === 'string') registerSecret(options.secret);
  }

  /** A signed token for `claims`; throws InvalidArgument when they are malformed. */
  sign(claims: NewClaims): string {
    return asRuntimeError(() => this.tokens.sign(claims));
  }

  /** The claims of a genuine, unexpired token; anything else throws Unauthenticated. */
  verify(token: string): TokenClaims {
    return asRuntimeError(() => this.tokens.verify(token));
  }
}

function asRuntimeError<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof TokenError) throw new RuntimeError(CODES[error.code], error.message, { cause: error });
    throw error;
  }
}
