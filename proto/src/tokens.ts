// Troupe's bearer tokens, part of the RuntimeService contract as much as the .proto files are: the
// gRPC API and the gateway accept a call only with one. HMAC-SHA256-signed claims saying who the
// bearer is and what they may see — one tenant (a namespace), or a platform role — in the format
// `v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "v1." + claims))>`, small enough to
// ride in a WebSocket subprotocol. Whoever holds the secret signs them: the runtime (npm start),
// the operator (its own admin token) and the `troupe token` CLI.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Stable codes of token failures. */
export const TokenErrorCode = {
  /** Options given to the Tokens constructor are invalid (a short secret, a bad lifetime). */
  InvalidOptions: 'INVALID_OPTIONS',
  /** Claims given to `sign` are malformed; the message names the claim. */
  InvalidClaims: 'INVALID_CLAIMS',
  /** A token given to `verify` is malformed, forged, tampered with or expired. */
  Unauthenticated: 'UNAUTHENTICATED',
} as const;

export type TokenErrorCode = (typeof TokenErrorCode)[keyof typeof TokenErrorCode];

/** A refused token, claim or option. Never retriable: the same input fails the same way. */
export class TokenError extends Error {
  override name = 'TokenError';
  readonly retriable = false;

  constructor(
    readonly code: TokenErrorCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

/** Platform roles: `admin` sees and does everything; `sre` sees every namespace and may scale pools. */
export type PlatformRole = 'admin' | 'sre';

/** Who the bearer is: a tenant's user, or a platform role. */
export type TokenSubject = { sub: string; tenant: string; role?: undefined } | { sub: string; role: PlatformRole; tenant?: undefined };

/** What a token says about its bearer. `exp` is unix seconds. */
export type TokenClaims = TokenSubject & { exp: number };

/** Claims to sign: `exp` defaults to now + `ttlSeconds`. */
export type NewClaims = TokenSubject & { exp?: number };

export interface TokensOptions {
  /** The HMAC key, at least 32 bytes. Every runtime node and gateway replica must share it. */
  secret: string | Uint8Array;
  /** Lifetime of a signed token when its claims name no `exp`. */
  ttlSeconds?: number;
  /** Tokens longer than this are refused before any work is done on them. */
  maxLength?: number;
  /** Unix milliseconds; injected by tests. */
  now?: () => number;
}

export const TOKENS_DEFAULTS = {
  ttlSeconds: 12 * 3600,
  maxLength: 2048,
  now: Date.now,
} as const satisfies Omit<TokensOptions, 'secret'>;

const VERSION = 'v1';
const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Signs and verifies bearer tokens.
 *
 * @example
 * const tokens = new Tokens({ secret: process.env.TROUPE_TOKEN_SECRET! });
 * const token = tokens.sign({ sub: 'alice@acme', tenant: 'acme' });
 * tokens.verify(token); // { sub: 'alice@acme', tenant: 'acme', exp: … }
 */
export class Tokens {
  private readonly key: Buffer;
  private readonly options: Required<Omit<TokensOptions, 'secret'>>;

  constructor(options: TokensOptions) {
    // A key given as undefined keeps its default.
    this.options = {
      ttlSeconds: options.ttlSeconds ?? TOKENS_DEFAULTS.ttlSeconds,
      maxLength: options.maxLength ?? TOKENS_DEFAULTS.maxLength,
      now: options.now ?? TOKENS_DEFAULTS.now,
    };
    this.key = Buffer.from(options.secret);
    if (this.key.length < 32) {
      throw new TokenError(TokenErrorCode.InvalidOptions, `Tokens option secret must be at least 32 bytes, got ${this.key.length}`);
    }
    if (!Number.isInteger(this.options.ttlSeconds) || this.options.ttlSeconds <= 0) {
      throw new TokenError(
        TokenErrorCode.InvalidOptions,
        `Tokens option ttlSeconds must be a positive integer, got ${this.options.ttlSeconds}`,
      );
    }
  }

  /** A signed token for `claims`; throws InvalidClaims when they are malformed. */
  sign(claims: NewClaims): string {
    const full = { ...claims, exp: claims.exp ?? Math.floor(this.options.now() / 1000) + this.options.ttlSeconds };
    checkClaims(full, TokenErrorCode.InvalidClaims);
    const payload = `${VERSION}.${Buffer.from(JSON.stringify(full)).toString('base64url')}`;
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /** The claims of a genuine, unexpired token; anything else throws Unauthenticated. */
  verify(token: string): TokenClaims {
    if (token.length > this.options.maxLength) throw unauthenticated('the token is too long');
    const [version, body, signature, ...rest] = token.split('.');
    if (version !== VERSION || body === undefined || signature === undefined || rest.length > 0) {
      throw unauthenticated('the token is malformed');
    }
    const expected = this.mac(`${version}.${body}`);
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw unauthenticated('the token signature is invalid');
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch (error) {
      throw unauthenticated('the token claims are not JSON', error);
    }
    checkClaims(claims, TokenErrorCode.Unauthenticated);
    if (claims.exp * 1000 <= this.options.now()) throw unauthenticated('the token has expired');
    return claims;
  }

  /**
   * A token source for a long-running caller: a token for `subject` lasting `ttlSeconds`, signed
   * anew once half of its life has passed, so that every call — and every stream, which the
   * runtime ends when its token expires — starts with at least half a lifetime ahead of it.
   *
   * @example
   * const token = new Tokens({ secret, ttlSeconds: 3600 }).renewing({ sub: 'system:troupe-operator', role: 'admin' });
   * new GrpcRuntimeClient({ address, token });
   */
  renewing(subject: TokenSubject): () => string {
    checkClaims({ ...subject, exp: 1 }, TokenErrorCode.InvalidClaims);
    let token = '';
    let renewAt = 0;
    return () => {
      const now = this.options.now();
      if (now >= renewAt) {
        const exp = Math.floor(now / 1000) + this.options.ttlSeconds;
        token = this.sign({ ...subject, exp });
        renewAt = now + (this.options.ttlSeconds * 1000) / 2;
      }
      return token;
    };
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest();
  }
}

function unauthenticated(message: string, cause?: unknown): TokenError {
  return new TokenError(TokenErrorCode.Unauthenticated, message, { cause });
}

function checkClaims(claims: unknown, code: TokenErrorCode): asserts claims is TokenClaims {
  const fail = (message: string) => new TokenError(code, `token claims: ${message}`);
  if (typeof claims !== 'object' || claims === null) throw fail('not an object');
  const { sub, tenant, role, exp } = claims as Record<string, unknown>;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256) throw fail('sub must be a string of 1..256 characters');
  if (typeof exp !== 'number' || !Number.isInteger(exp) || exp <= 0) throw fail('exp must be unix seconds');
  if ((tenant === undefined) === (role === undefined)) throw fail('exactly one of tenant and role must be set');
  if (tenant !== undefined && (typeof tenant !== 'string' || !NAME.test(tenant))) throw fail('tenant must be a namespace name (DNS label)');
  if (role !== undefined && role !== 'admin' && role !== 'sre') throw fail('role must be admin or sre');
}
