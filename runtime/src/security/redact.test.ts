/**
 * Redaction: the secrets the process holds and anything shaped like a credential are removed
 * from text, and every boundary that turns an error into words a caller sees (a gRPC status, an
 * HTTP error body, a stream error message, a log line) goes through it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { grpcError } from '../api/grpc-server.js';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { errorMessage, errorReply } from '../gateway/errors.js';
import { Tokens } from '../gateway/tokens.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { logError, redact, REDACTED } from './redact.js';

describe('redact', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('removes an API key once a provider was made with it, whatever its shape', () => {
    const apiKey = 'plain-looking-api-key-7a91c3';
    expect(redact(`rejected ${apiKey}`)).toBe(`rejected ${apiKey}`);
    createProvider('hosted', { type: 'openai' }, { apiKey });
    expect(redact(`401 from https://api.example/v1: bad key ${apiKey}, try again`)).toBe(
      `401 from https://api.example/v1: bad key ${REDACTED}, try again`,
    );
  });

  it('removes the longer of two secrets whole, the extra ones given, and ignores values too short to be secrets', () => {
    expect(redact('key abcdefgh-and-more here', ['abcdefgh', 'abcdefgh-and-more'])).toBe(`key ${REDACTED} here`);
    expect(redact('the word yes stays', ['yes'])).toBe('the word yes stays');
  });

  it('removes credentials by their shape', () => {
    const token = new Tokens({ secret: 'redact-test-secret-of-at-least-32-bytes' }).sign({ sub: 'alice', tenant: 'acme' });
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz';
    expect(redact('Authorization: Bearer abc.DEF-123_456~789')).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(redact('Incorrect API key provided: sk-proj-AbCdEf0123456789xyz.')).toBe(`Incorrect API key provided: ${REDACTED}.`);
    expect(redact('anthropic said sk-ant-api03-AAAABBBBCCCCDDDD')).toBe(`anthropic said ${REDACTED}`);
    expect(redact(`token ${token} refused`)).toBe(`token ${REDACTED} refused`);
    expect(redact(`service account ${jwt}`)).toBe(`service account ${REDACTED}`);
    expect(redact('connect to redis://default:hunter22@redis:6379/0 failed')).toBe(
      `connect to redis://default:${REDACTED}@redis:6379/0 failed`,
    );
    expect(redact('GET /v1/models?api_key=abc123&limit=5')).toBe(`GET /v1/models?api_key=${REDACTED}&limit=5`);
  });

  it('leaves ordinary text alone, the advice on how to send a token included', () => {
    for (const text of [
      'send the token as Authorization: Bearer <token>',
      'task-runner: acme/shop task-12 failed: no AgentPool for role qa',
      'spec.brief must be 1..20000 characters, got 0',
      'http://troupe-runtime:50051 is unavailable',
    ]) {
      expect(redact(text)).toBe(text);
    }
  });

  it('is applied where errors become what a caller or a log sees', () => {
    const leaky = new RuntimeError(
      RuntimeErrorCode.InvalidArgument,
      'upstream said: Incorrect API key provided: sk-live-0123456789abcdefXYZ',
    );
    expect(grpcError(leaky)).toEqual({ code: 3, details: `upstream said: Incorrect API key provided: ${REDACTED}` });
    expect(errorReply(leaky).body.error.message).toBe(`upstream said: Incorrect API key provided: ${REDACTED}`);
    expect(errorMessage(leaky, 'projects/acme').message).toBe(`upstream said: Incorrect API key provided: ${REDACTED}`);
    const written: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((line: string) => void written.push(line));
    logError('troupe gateway')(new Error('redis://app:s3cr3t-pass@redis:6379 refused the connection'));
    expect(written).toEqual([`troupe gateway: redis://app:${REDACTED}@redis:6379 refused the connection`]);
  });

  it('logs the causes an error does not already quote, redacted too', () => {
    const written: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((line: string) => void written.push(line));
    const socket = new Error('connect ECONNREFUSED 127.0.0.1:9092');
    const quoted = new Error(`cannot read end offsets: ${socket.message}`, { cause: socket });
    const leaky = new Error('upstream said: Incorrect API key provided: sk-live-0123456789abcdefXYZ');
    const log = logError('troupe node');
    log(new Error('pool acme/testers: cannot count the runs waiting', { cause: quoted }));
    log(new Error('the call failed', { cause: leaky }));
    expect(written).toEqual([
      'troupe node: pool acme/testers: cannot count the runs waiting (cause: cannot read end offsets: connect ECONNREFUSED 127.0.0.1:9092)',
      `troupe node: the call failed (cause: upstream said: Incorrect API key provided: ${REDACTED})`,
    ]);
  });
});
