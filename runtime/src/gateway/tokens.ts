/**
 * Gateway tokens: HMAC-SHA256-signed claims saying who the bearer is and what they may see —
 * one tenant (a namespace), or a platform role. The format is
 * `v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "v1." + claims))>`, small enough
 * to ride in a WebSocket subprotocol.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { withDefaults } from '../llm/options.js';
import { registerSecret } from '../security/redact.js';

/** Platform roles: `admin` sees and does everything; `sre` sees every namespace and may scale pools. */
export type PlatformRole = 'admin' | 'sre';

/** What a token says about its bearer. `exp` is unix seconds. */
export type TokenClaims =
  { sub: string; tenant: string; exp: number; role?: undefined } | { sub: string; role: PlatformRole; exp: number; tenant?: undefined };

/** Claims to sign: `exp` defaults to now + `ttlSeconds`. */
export type NewClaims =
  { sub: string; tenant: string; exp?: number; role?: undefined } | { sub: string; role: PlatformRole; exp?: number; tenant?: undefined };

export interface TokensOptions {
  /** The HMAC key, at least 32 bytes. Every gateway replica must share it. */
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
 * Signs and verifies gateway tokens.
 *
 * @example
 * const tokens = new Tokens({ secret: process.env.TROUPE_GATEWAY_SECRET! });
 * const token = tokens.sign({ sub: 'alice@acme', tenant: 'acme' });
 * tokens.verify(token); // { sub: 'alice@acme', tenant: 'acme', exp: … }
 */
export class Tokens {
  private readonly key: Buffer;
  private readonly options: Required<Omit<TokensOptions, 'secret'>>;

  constructor(options: TokensOptions) {
    this.options = withDefaults(TOKENS_DEFAULTS, options);
    this.key = Buffer.from(options.secret);
    if (typeof options.secret === 'string') registerSecret(options.secret);
    if (this.key.length < 32) {
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `Tokens option secret must be at least 32 bytes, got ${this.key.length}`);
    }
    if (!Number.isInteger(this.options.ttlSeconds) || this.options.ttlSeconds <= 0) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `Tokens option ttlSeconds must be a positive integer, got ${this.options.ttlSeconds}`,
      );
    }
  }

  /** A signed token for `claims`; throws InvalidArgument when they are malformed. */
  sign(claims: NewClaims): string {
    const full = { ...claims, exp: claims.exp ?? Math.floor(this.options.now() / 1000) + this.options.ttlSeconds };
    checkClaims(full, RuntimeErrorCode.InvalidArgument);
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
    } catch {
      throw unauthenticated('the token claims are not JSON');
    }
    checkClaims(claims, RuntimeErrorCode.Unauthenticated);
    if (claims.exp * 1000 <= this.options.now()) throw unauthenticated('the token has expired');
    return claims;
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest();
  }
}

function unauthenticated(message: string): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.Unauthenticated, message);
}

function checkClaims(claims: unknown, code: RuntimeErrorCode): asserts claims is TokenClaims {
  const fail = (message: string) => new RuntimeError(code, `token claims: ${message}`);
  if (typeof claims !== 'object' || claims === null) throw fail('not an object');
  const { sub, tenant, role, exp } = claims as Record<string, unknown>;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256) throw fail('sub must be a string of 1..256 characters');
  if (typeof exp !== 'number' || !Number.isInteger(exp) || exp <= 0) throw fail('exp must be unix seconds');
  if ((tenant === undefined) === (role === undefined)) throw fail('exactly one of tenant and role must be set');
  if (tenant !== undefined && (typeof tenant !== 'string' || !NAME.test(tenant))) throw fail('tenant must be a namespace name (DNS label)');
  if (role !== undefined && role !== 'admin' && role !== 'sre') throw fail('role must be admin or sre');
}
