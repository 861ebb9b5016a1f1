/**
 * Webhooks over HTTP: a JSON POST signed with HMAC-SHA256 of the body under the endpoint's
 * secret. Receivers check `X-Troupe-Signature`, drop repeats by `X-Troupe-Event-Id` (a retried
 * delivery carries the same id and body), and may refuse stale ones by `X-Troupe-Timestamp`.
 * A network failure, a timeout, 408, 429 and 5xx are worth another try; other answers are not.
 * Credentials in an endpoint's URL are sent as Basic auth, and never appear in an error.
 */
import { createHmac } from 'node:crypto';
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { redact } from '../../security/redact.js';
import { DeliveryError, redactUrl, type WebhookClient, type WebhookRequest } from './delivery.types.js';

/** The headers of a webhook request, lower-case as Node's IncomingMessage shows them. */
export const WEBHOOK_HEADERS = {
  /** `sha256=<hex HMAC-SHA256 of the body under the secret>`; absent when the endpoint has no secret. */
  signature: 'x-troupe-signature',
  /** Unix seconds when this attempt was sent. */
  timestamp: 'x-troupe-timestamp',
  /** The event's id, the same on every attempt: the key to drop repeats by. */
  eventId: 'x-troupe-event-id',
  /** The payload's `type`, e.g. `project.phase_changed`. */
  event: 'x-troupe-event',
} as const;

export interface WebhookClientOptions {
  /** An endpoint that has not answered after this long has failed this attempt (default 10 s). */
  timeoutMs: number;
  userAgent: string;
  now: () => number;
}

export const WEBHOOK_CLIENT_DEFAULTS = {
  timeoutMs: 10_000,
  userAgent: 'troupe-webhooks/1',
  now: Date.now,
} as const satisfies WebhookClientOptions;

/** The `X-Troupe-Signature` value of `body` under `secret`. */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * @example
 * const webhooks = new HttpWebhookClient();
 * await webhooks.post({ url: 'https://hooks.acme.example/troupe', eventId: 'acme/shop#7', eventType: 'project.phase_changed', body, secret });
 */
export class HttpWebhookClient implements WebhookClient {
  readonly options: WebhookClientOptions;

  constructor(options: Partial<WebhookClientOptions> = {}) {
    this.options = { ...WEBHOOK_CLIENT_DEFAULTS, ...options };
    if (!(Number.isInteger(this.options.timeoutMs) && this.options.timeoutMs > 0)) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `HttpWebhookClient option timeoutMs must be a positive integer, got ${this.options.timeoutMs}`,
      );
    }
  }

  async post(request: WebhookRequest): Promise<void> {
    const target = redactUrl(request.url);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': this.options.userAgent,
      [WEBHOOK_HEADERS.event]: request.eventType,
      [WEBHOOK_HEADERS.eventId]: request.eventId,
      [WEBHOOK_HEADERS.timestamp]: String(Math.floor(this.options.now() / 1000)),
    };
    if (request.secret !== undefined) headers[WEBHOOK_HEADERS.signature] = webhookSignature(request.secret, request.body);
    let url: URL;
    try {
      url = new URL(request.url);
    } catch (error) {
      throw new DeliveryError('webhook', target, 'the URL is not valid', { retriable: false, cause: error });
    }
    // Credentials in the URL go as Basic auth, the way a browser sends them; fetch refuses them in the URL.
    if (url.username !== '' || url.password !== '') {
      const basic = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
      headers.authorization = `Basic ${Buffer.from(basic).toString('base64')}`;
      url.username = '';
      url.password = '';
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers,
        body: request.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new DeliveryError('webhook', target, `POST failed: ${redact(detail)}`, { retriable: true, cause: error });
    }
    // The body is not read, but it must be drained for the connection to be reused.
    await response.body?.cancel();
    if (response.ok) return;
    const retriable = response.status >= 500 || response.status === 408 || response.status === 429;
    throw new DeliveryError('webhook', target, `answered ${response.status} ${response.statusText}`.trimEnd(), { retriable });
  }
}
