/**
 * Secret redaction, applied wherever text leaves the process or crosses to someone who may not
 * see everything: gRPC statuses, the gateway's error bodies and stream messages, the failures
 * journaled into a project's status (which the dashboard and the Project resource show), and
 * logs. It removes the values of the secrets this process holds — each registered where it
 * enters (`registerSecret`: API keys in createProvider, the token secret in Tokens) — and
 * anything shaped like a credential even when its value is not known here: `Bearer …`, `sk-…`
 * API keys, troupe tokens and JWTs, passwords in URLs and keys in query strings.
 */

/** What a secret is replaced with. */
export const REDACTED = '[redacted]';

/** Shorter values would redact ordinary words; no real key or secret is that short. */
const MIN_SECRET_LENGTH = 8;

/** Credentials recognised by their shape. */
const PATTERNS: readonly [RegExp, string][] = [
  // Whatever follows an Authorization scheme.
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // Hosted providers' API keys: OpenAI `sk-…` and `sk-proj-…`, Anthropic `sk-ant-…`.
  [/\bsk-[A-Za-z0-9_-]{16,}/g, REDACTED],
  // Troupe tokens (gateway/tokens.ts): v1.<claims>.<43 characters of HMAC-SHA256>.
  [/\bv1\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g, REDACTED],
  // JWTs, e.g. Kubernetes service account tokens.
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, REDACTED],
  // The password of a URL: redis://user:password@host.
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s/@]+@/gi, `$1${REDACTED}@`],
  // Keys in a query string: ?api_key=…, &token=….
  [/([?&](?:api[-_]?key|key|token|access_token|secret)=)[^&\s#"']+/gi, `$1${REDACTED}`],
];

/** Process-wide on purpose: a key one part of the process holds must not leak through another. */
const secrets = new Set<string>();

/**
 * Remembers a secret value so that `redact` removes it from every text from now on. Values
 * shorter than 8 characters, and undefined, are ignored.
 *
 * @example
 * registerSecret(env.OPENAI_API_KEY);
 */
export function registerSecret(value: string | undefined): void {
  if (value !== undefined && value.length >= MIN_SECRET_LENGTH) secrets.add(value);
}

/**
 * `text` without the registered secrets, the `extra` ones, or anything shaped like a credential.
 *
 * @example
 * redact('401: Incorrect API key provided: sk-proj-abcdefghijklmnop1234') // '401: Incorrect API key provided: [redacted]'
 */
export function redact(text: string, extra: readonly (string | undefined)[] = []): string {
  const known = [...secrets, ...extra.filter((value): value is string => value !== undefined && value.length >= MIN_SECRET_LENGTH)];
  // Longest first, so that a secret containing another is removed whole.
  let redacted = text;
  for (const secret of known.sort((a, b) => b.length - a.length)) redacted = redacted.split(secret).join(REDACTED);
  for (const [pattern, replacement] of PATTERNS) redacted = redacted.replace(pattern, replacement);
  return redacted;
}

/**
 * A printer for the `onError` option of a long-running part, writing each error's message and
 * the messages of its causes that it does not already quote, redacted, on one line of stderr.
 *
 * @example
 * const onError = logError('troupe gateway'); // troupe gateway: <message> (cause: <its cause's message>)
 */
export function logError(prefix: string): (error: Error) => void {
  return (error) => console.error(`${prefix}: ${redact(withCauses(error))}`);
}

/** The causes a log line stops at: a cycle or a deep chain prints no more than this. */
const MAX_CAUSES = 5;

function withCauses(error: Error): string {
  let line = error.message;
  let cause = error.cause;
  for (let depth = 0; cause !== undefined && cause !== null && depth < MAX_CAUSES; depth += 1) {
    const message = cause instanceof Error ? cause.message : String(cause);
    if (!line.includes(message)) line += ` (cause: ${message})`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return line;
}
