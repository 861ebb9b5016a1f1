/** Bearer tokens: what one signs another with the secret verifies; forgeries, tampering, expiry and bad claims refused with their code. */
import { describe, expect, it } from 'vitest';
import { TokenErrorCode, Tokens } from './index.js';

const SECRET = 'a-secret-that-is-at-least-32-bytes-long';

/** The code and message `verify` refuses `candidate` with, or undefined when it accepts it. */
function refusal(tokens: Tokens, candidate: string): { code: string; message: string } | undefined {
  try {
    tokens.verify(candidate);
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  return undefined;
}

describe('bearer tokens', () => {
  it('verify what they signed, for a tenant and for a platform role', () => {
    const tokens = new Tokens({ secret: SECRET, now: () => 1_000_000 });
    expect(tokens.verify(tokens.sign({ sub: 'alice@acme', tenant: 'acme' }))).toEqual({
      sub: 'alice@acme',
      tenant: 'acme',
      exp: 1_000 + 12 * 3600,
    });
    expect(tokens.verify(tokens.sign({ sub: 'oncall', role: 'sre', exp: 5_000 }))).toEqual({ sub: 'oncall', role: 'sre', exp: 5_000 });
    // Another signer with the same secret (the operator, the CLI) makes tokens this one accepts.
    const elsewhere = new Tokens({ secret: Buffer.from(SECRET), now: () => 1_000_000 });
    expect(tokens.verify(elsewhere.sign({ sub: 'system:troupe-operator', role: 'admin' })).role).toBe('admin');
  });

  it('refuse a forged, tampered, expired or malformed token as unauthenticated', () => {
    let now = 1_000_000;
    const tokens = new Tokens({ secret: SECRET, now: () => now });
    const token = tokens.sign({ sub: 'alice', tenant: 'acme', exp: 1_060 });
    const [version, , signature] = token.split('.');
    const claims = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

    expect(refusal(tokens, new Tokens({ secret: `${SECRET}!` }).sign({ sub: 'alice', tenant: 'acme' }))).toEqual({
      code: TokenErrorCode.Unauthenticated,
      message: 'the token signature is invalid',
    });
    expect(refusal(tokens, `${version}.${claims({ sub: 'alice', role: 'admin', exp: 1_060 })}.${signature}`)?.message).toBe(
      'the token signature is invalid',
    );
    expect(refusal(tokens, 'not-a-token')?.message).toBe('the token is malformed');
    expect(refusal(tokens, `${token}.extra`)?.message).toBe('the token is malformed');
    expect(refusal(tokens, 'x'.repeat(5000))?.message).toBe('the token is too long');
    expect(refusal(tokens, token)).toBeUndefined();
    now = 1_060_000;
    expect(refusal(tokens, token)).toEqual({ code: TokenErrorCode.Unauthenticated, message: 'the token has expired' });
  });

  it('name what is wrong with claims and options, with the code of each', () => {
    const tokens = new Tokens({ secret: SECRET });
    const thrown = (work: () => unknown) => {
      try {
        work();
      } catch (error) {
        return { code: (error as { code: string }).code, message: (error as Error).message };
      }
      return undefined;
    };
    expect(thrown(() => tokens.sign({ sub: 'x', tenant: 'Not_A_Namespace' }))).toEqual({
      code: TokenErrorCode.InvalidClaims,
      message: 'token claims: tenant must be a namespace name (DNS label)',
    });
    expect(() => tokens.sign({ sub: '', role: 'admin' })).toThrow('token claims: sub must be a string of 1..256 characters');
    expect(() => tokens.sign({ sub: 'x', role: 'root' as 'admin' })).toThrow('token claims: role must be admin or sre');
    expect(() => tokens.sign({ sub: 'x', tenant: 'acme', role: 'admin' } as never)).toThrow('exactly one of tenant and role must be set');
    expect(thrown(() => new Tokens({ secret: 'short' }))).toEqual({
      code: TokenErrorCode.InvalidOptions,
      message: 'Tokens option secret must be at least 32 bytes, got 5',
    });
    expect(() => new Tokens({ secret: SECRET, ttlSeconds: 0 })).toThrow('Tokens option ttlSeconds must be a positive integer, got 0');
  });

  it('renew a running token once half its life has passed, so that none is handed out close to expiring', () => {
    let now = 1_000_000;
    const tokens = new Tokens({ secret: SECRET, ttlSeconds: 3600, now: () => now });
    const token = tokens.renewing({ sub: 'system:troupe-operator', role: 'admin' });
    const first = token();
    expect(tokens.verify(first)).toEqual({ sub: 'system:troupe-operator', role: 'admin', exp: 1_000 + 3600 });
    now += 1_799_000;
    expect(token()).toBe(first);
    now += 1_000;
    const second = token();
    expect(second).not.toBe(first);
    expect(tokens.verify(second).exp).toBe(1_000 + 1_800 + 3600);
    // Long after the first one expired, the source still hands out a token the runtime accepts.
    now += 10 * 3_600_000;
    expect(refusal(tokens, first)?.message).toBe('the token has expired');
    expect(refusal(tokens, token())).toBeUndefined();
    expect(() => tokens.renewing({ sub: 'x', tenant: 'Not_A_Namespace' })).toThrow('tenant must be a namespace name');
  });
});
