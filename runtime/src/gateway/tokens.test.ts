/**
 * The runtime's tokens: the format of @troupe/proto (tested there), with every refusal as the
 * RuntimeError the gateway answers 401 or 400 for and gRPC UNAUTHENTICATED or INVALID_ARGUMENT,
 * and the secret kept out of every text the runtime lets out.
 */
import { Tokens as BearerTokens } from '@troupe/proto';
import { describe, expect, it } from 'vitest';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { redact } from '../security/redact.js';
import { errorReply } from './errors.js';
import { Tokens } from './tokens.js';

const SECRET = 'a-secret-that-is-at-least-32-bytes-long';

function thrown(work: () => unknown): RuntimeError | undefined {
  try {
    work();
  } catch (error) {
    return error as RuntimeError;
  }
  return undefined;
}

describe('gateway tokens', () => {
  it('verify what they, or any signer with the same secret, signed', () => {
    const tokens = new Tokens({ secret: SECRET, now: () => 1_000_000 });
    expect(tokens.verify(tokens.sign({ sub: 'alice@acme', tenant: 'acme' }))).toEqual({
      sub: 'alice@acme',
      tenant: 'acme',
      exp: 1_000 + 12 * 3600,
    });
    const cli = new BearerTokens({ secret: SECRET, now: () => 1_000_000 });
    expect(tokens.verify(cli.sign({ sub: 'oncall', role: 'sre', exp: 5_000 }))).toEqual({ sub: 'oncall', role: 'sre', exp: 5_000 });
  });

  it('refuse a forged, expired or malformed token as Unauthenticated, which the gateway answers 401', () => {
    let now = 1_000_000;
    const tokens = new Tokens({ secret: SECRET, now: () => now });
    const forged = thrown(() => tokens.verify(new Tokens({ secret: `${SECRET}!` }).sign({ sub: 'alice', tenant: 'acme' })));
    expect(forged).toBeInstanceOf(RuntimeError);
    expect(forged).toMatchObject({ code: RuntimeErrorCode.Unauthenticated, message: 'the token signature is invalid' });
    expect(errorReply(forged).status).toBe('401 Unauthorized');
    expect(thrown(() => tokens.verify('not-a-token'))).toMatchObject({
      code: RuntimeErrorCode.Unauthenticated,
      message: 'the token is malformed',
    });
    const token = tokens.sign({ sub: 'alice', tenant: 'acme', exp: 1_060 });
    now = 1_060_000;
    expect(thrown(() => tokens.verify(token))).toMatchObject({ code: RuntimeErrorCode.Unauthenticated, message: 'the token has expired' });
  });

  it('refuse bad claims as InvalidArgument and bad options as InvalidOptions, naming what is wrong', () => {
    const tokens = new Tokens({ secret: SECRET });
    expect(thrown(() => tokens.sign({ sub: 'x', tenant: 'Not_A_Namespace' }))).toMatchObject({
      code: RuntimeErrorCode.InvalidArgument,
      message: 'token claims: tenant must be a namespace name (DNS label)',
    });
    expect(thrown(() => new Tokens({ secret: 'short' }))).toMatchObject({
      code: RuntimeErrorCode.InvalidOptions,
      message: 'Tokens option secret must be at least 32 bytes, got 5',
    });
    expect(thrown(() => new Tokens({ secret: SECRET, ttlSeconds: 0 }))).toMatchObject({
      code: RuntimeErrorCode.InvalidOptions,
      message: 'Tokens option ttlSeconds must be a positive integer, got 0',
    });
  });

  it('keep the secret out of what the runtime lets out', () => {
    const secret = 'another-secret-for-the-redaction-test-0123';
    new Tokens({ secret });
    expect(redact(`config: TROUPE_TOKEN_SECRET=${secret}`)).toBe('config: TROUPE_TOKEN_SECRET=[redacted]');
  });
});
