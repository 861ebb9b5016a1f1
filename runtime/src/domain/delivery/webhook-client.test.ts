/**
 * The webhook client against a real local HTTP server: what a receiver gets, and which answers
 * are worth another attempt.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedWith } from './delivery-fixtures.js';
import { DeliveryError } from './delivery.types.js';
import { HttpWebhookClient } from './webhook-client.js';

describe('HttpWebhookClient', () => {
  let server: Server;
  let base: string;
  const received: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];

  beforeAll(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        received.push({ path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        const status = Number(/^\/status\/(\d{3})$/.exec(request.url ?? '')?.[1] ?? 0);
        // /silent never answers: the client's timeout ends the attempt.
        if (status > 0) response.writeHead(status, status === 302 ? { location: '/status/204' } : {}).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    base = `http://127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const request = {
    eventId: 'acme/shop#7',
    eventType: 'project.phase_changed' as const,
    body: '{"id":"acme/shop#7","type":"project.phase_changed"}',
  };

  it('POSTs the body as JSON with the event id and type, the time of the attempt and the signature', async () => {
    const client = new HttpWebhookClient({ now: () => Date.UTC(2025, 0, 14, 9, 30, 15, 999) });
    await client.post({ ...request, url: `${base}/status/204`, secret: 'whsec-signing-key-0001' });
    await client.post({ ...request, url: `${base}/status/200` });

    const [signed, unsigned] = received.slice(-2);
    expect(signed?.body).toBe(request.body);
    expect(signed?.headers).toMatchObject({
      'content-type': 'application/json',
      'x-troupe-event-id': 'acme/shop#7',
      'x-troupe-event': 'project.phase_changed',
      'x-troupe-timestamp': String(Date.UTC(2025, 0, 14, 9, 30, 15) / 1000),
    });
    expect(signedWith('whsec-signing-key-0001', signed?.headers ?? {}, signed?.body ?? '')).toBe(true);
    expect(signedWith('another-key-entirely', signed?.headers ?? {}, signed?.body ?? '')).toBe(false);
    expect(unsigned?.headers['x-troupe-signature']).toBeUndefined();
  });

  it('fails worth retrying on 5xx, 429, 408 and silence, and for good on other answers', async () => {
    const client = new HttpWebhookClient({ timeoutMs: 300 });
    const outcome = (path: string) =>
      client.post({ ...request, url: `${base}${path}` }).then(
        () => 'delivered',
        (error: unknown) => {
          expect(error).toBeInstanceOf(DeliveryError);
          return `${(error as DeliveryError).retriable ? 'retry' : 'give up'}: ${(error as DeliveryError).message}`;
        },
      );
    expect(await outcome('/status/503')).toBe(`retry: webhook ${base}/status/503: answered 503 Service Unavailable`);
    expect(await outcome('/status/429')).toMatch(/^retry: .*answered 429 Too Many Requests$/);
    expect(await outcome('/status/408')).toMatch(/^retry: .*answered 408/);
    expect(await outcome('/silent')).toMatch(/^retry: .*POST failed: .*(timeout|aborted)/i);
    expect(await outcome('/status/410')).toMatch(/^give up: .*answered 410 Gone$/);
    // A redirect is not followed: the signed body goes only where the project said.
    expect(await outcome('/status/302')).toMatch(/^give up: .*answered 302 Found$/);
  });

  it('sends credentials in the URL as Basic auth, and names the endpoint without them', async () => {
    const url = `${base.replace('http://', 'http://hook-user:hook-password-1234@')}/status/500`;
    const error = await new HttpWebhookClient().post({ ...request, url }).catch((thrown: unknown) => thrown as DeliveryError);
    expect(error?.message).toBe(`webhook ${base}/status/500: answered 500 Internal Server Error`);
    expect(received.at(-1)?.headers.authorization).toBe(`Basic ${Buffer.from('hook-user:hook-password-1234').toString('base64')}`);
  });
});
