/**
 * The SMTP client against a real SMTP server process (Python's stdlib smtpd): what arrives,
 * how it is encoded, and which refusals are worth another try.
 */
import { freePort } from '@troupe/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../testing/eventually.js';
import { startSmtpServer, type SmtpServer } from './delivery-fixtures.js';
import { DeliveryError } from './delivery.types.js';
import { SmtpMailer } from './smtp-client.js';

describe('SmtpMailer against a real SMTP server', () => {
  let server: SmtpServer;

  beforeAll(async () => {
    server = await startSmtpServer();
  });

  afterAll(async () => {
    await server?.stop();
  });

  const mail = {
    from: 'Troupe <troupe@troupe.dev>',
    subject: '[troupe] acme/shop is Running: architecture started',
    date: Date.UTC(2025, 0, 14, 9, 30),
  };

  it('delivers a plain message to every recipient, with its headers, and lines starting with a dot intact', async () => {
    const mailer = new SmtpMailer({ host: '127.0.0.1', port: server.port, heloName: 'troupe.test' });
    await mailer.send({
      ...mail,
      to: ['cto@acme.example', 'pm@acme.example'],
      text: 'Project acme/shop is now Running.\n.hidden line\n\nReason: PhaseStarted\n',
      messageId: 'abc123@troupe',
    });

    await eventually(async () => expect(server.mails.length).toBe(1));
    const [received] = server.mails;
    expect(received?.from).toBe('troupe@troupe.dev');
    expect(received?.to).toEqual(['cto@acme.example', 'pm@acme.example']);
    const data = received?.data ?? '';
    expect(data).toContain('From: Troupe <troupe@troupe.dev>');
    expect(data).toContain('To: cto@acme.example, pm@acme.example');
    expect(data).toContain('Subject: [troupe] acme/shop is Running: architecture started');
    expect(data).toContain('Date: Tue, 14 Jan 2025 09:30:00 +0000');
    expect(data).toContain('Message-ID: <abc123@troupe>');
    expect(data).toContain('Content-Transfer-Encoding: 7bit');
    expect(data).toMatch(/\n\nProject acme\/shop is now Running\.\r?\n\.hidden line\r?\n/);
  });

  it('encodes a subject and body that are not ASCII, and keeps header injection out', async () => {
    const mailer = new SmtpMailer({ host: '127.0.0.1', port: server.port });
    const before = server.mails.length;
    const text = 'Die Architektur ist fertig — nächster Schritt: Implementierung ✓\n';
    await mailer.send({
      ...mail,
      subject: 'Architektur für acme/shop fertig\r\nBcc: everyone@example.com',
      to: ['cto@acme.example'],
      text,
      messageId: 'def456@troupe',
    });

    await eventually(async () => expect(server.mails.length).toBe(before + 1));
    const data = server.mails.at(-1)?.data ?? '';
    expect(data).not.toMatch(/^Bcc:/m);
    const subject = /^Subject: (.*(?:\r?\n .*)*)/m.exec(data)?.[1] ?? '';
    const decoded = [...subject.matchAll(/=\?UTF-8\?B\?([^?]*)\?=/g)]
      .map((word) => Buffer.from(word[1] ?? '', 'base64').toString('utf8'))
      .join('');
    expect(decoded).toBe('Architektur für acme/shop fertig Bcc: everyone@example.com');
    expect(data).toContain('Content-Transfer-Encoding: base64');
    const body = data
      .split(/\r?\n\r?\n/)
      .slice(1)
      .join('')
      .replace(/\s+/g, '');
    expect(Buffer.from(body, 'base64').toString('utf8')).toBe(text);
  });

  it("fails for good on the server's 5xx refusal, and worth retrying when no server answers", async () => {
    const failure = (promise: Promise<unknown>) =>
      promise.then(
        () => expect.unreachable('the mail was sent'),
        (error: unknown) => error as DeliveryError,
      );
    const refused = await failure(
      new SmtpMailer({ host: '127.0.0.1', port: server.port }).send({
        ...mail,
        to: ['rejected@acme.example'],
        text: 'x',
        messageId: 'r@troupe',
      }),
    );
    expect(refused).toBeInstanceOf(DeliveryError);
    expect(refused.retriable).toBe(false);
    expect(refused.message).toMatch(/answered the message with 550 no such mailbox here/);

    const nobody = await failure(
      new SmtpMailer({ host: '127.0.0.1', port: await freePort() }).send({
        ...mail,
        to: ['cto@acme.example'],
        text: 'x',
        messageId: 'n@troupe',
      }),
    );
    expect(nobody.retriable).toBe(true);
    expect(nobody.message).toMatch(/SMTP connection failed: connect ECONNREFUSED/);

    const badAddress = await failure(
      new SmtpMailer({ host: '127.0.0.1', port: server.port }).send({
        ...mail,
        to: ['cto@acme.example>\r\nRCPT TO:<x@y'],
        text: 'x',
        messageId: 'b@troupe',
      }),
    );
    expect(badAddress.retriable).toBe(false);
    expect(badAddress.message).toMatch(/is not an email address/);
  });
});
