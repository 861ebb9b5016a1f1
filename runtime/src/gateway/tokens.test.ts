import { describe, expect, it } from 'vitest';
import { RuntimeErrorCode } from '../errors.js';
import { Tokens } from './tokens.js';

const SECRET = 'a-secret-that-is-at-least-32-bytes-long';

describe('gateway tokens', () => {
  it('verify what they signed, for a tenant and for a platform role', () => {
    const tokens = new Tokens({ secret: SECRET, now: () => 1_000_000 });
    expect(tokens.verify(tokens.sign({ sub: 'alice@acme', tenant: 'acme' }))).toEqual({
      sub: 'alice@acme',
      tenant: 'acme',
      exp: 1_000 + 12 * 3600,
    });
    expect(tokens.verify(tokens.sign({ sub: 'oncall', role: 'sre', exp: 5_000 }))).toEqual({ sub: 'oncall', role: 'sre', exp: 5_000 });
  });

  it('refuse a forged, tampered, expired or malformed token as unauthenticated', () => {
    let now = 1_000_000;
    const tokens = new Tokens({ secret: SECRET, now: () => now });
    const token = tokens.sign({ sub: 'alice', tenant: 'acme', exp: 1_060 });
    const [version, , signature] = token.split('.');
    const claims = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const refused = (candidate: string) => {
      try {
        tokens.verify(candidate);
      } catch (error) {
        return { code: (error as { code: string }).code, message: (error as Error).message };
      }
      return undefined;
    };

    expect(refused(new Tokens({ secret: `${SECRET}!` }).sign({ sub: 'alice', tenant: 'acme' }))).toEqual({
      code: RuntimeErrorCode.Unauthenticated,
      message: 'the token signature is invalid',
    });
    expect(refused(`${version}.${claims({ sub: 'alice', role: 'admin', exp: 1_060 })}.${signature}`)?.message).toBe(
      'the token signature is invalid',
    );
    expect(refused('not-a-token')?.message).toBe('the token is malformed');
    expect(refused(`${token}.extra`)?.message).toBe('the token is malformed');
    expect(refused('x'.repeat(5000))?.message).toBe('the token is too long');
    expect(refused(token)).toBeUndefined();
    now = 1_060_000;
    expect(refused(token)).toEqual({ code: RuntimeErrorCode.Unauthenticated, message: 'the token has expired' });
  });

  it('name what is wrong with claims and options', () => {
    const tokens = new Tokens({ secret: SECRET });
    expect(() => tokens.sign({ sub: 'x', tenant: 'Not_A_Namespace' })).toThrow('token claims: tenant must be a namespace name (DNS label)');
    expect(() => tokens.sign({ sub: '', role: 'admin' })).toThrow('token claims: sub must be a string of 1..256 characters');
    expect(() => tokens.sign({ sub: 'x', role: 'root' as 'admin' })).toThrow('token claims: role must be admin or sre');
    expect(() => tokens.sign({ sub: 'x', tenant: 'acme', role: 'admin' } as never)).toThrow('exactly one of tenant and role must be set');
    expect(() => new Tokens({ secret: 'short' })).toThrow('Tokens option secret must be at least 32 bytes, got 5');
    expect(() => new Tokens({ secret: SECRET, ttlSeconds: 0 })).toThrow('Tokens option ttlSeconds must be a positive integer, got 0');
  });
});
