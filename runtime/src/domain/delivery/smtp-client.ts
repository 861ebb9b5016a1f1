/**
 * A small SMTP client on node:net for notice emails: EHLO, MAIL FROM, RCPT TO, DATA, QUIT on
 * one plain connection, for a relay that takes mail without authentication (the cluster's or
 * the laptop's). Messages are plain-text MIME, base64-encoded when they are not short ASCII
 * lines. A 4xx answer or a broken connection is worth another try; a 5xx answer is not.
 */
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { DeliveryError, type Mail, type Mailer } from './delivery.types.js';

export interface SmtpOptions {
  host: string;
  port: number;
  /** The name this client gives in EHLO (default: the hostname). */
  heloName: string;
  /** A server silent for this long fails the attempt (default 30 s). */
  timeoutMs: number;
}

export const SMTP_DEFAULTS = {
  heloName: hostname(),
  timeoutMs: 30_000,
} as const satisfies Partial<SmtpOptions>;

const ADDRESS = /^[^\s<>@,;:"()[\]\\]+@[^\s<>@,;:"()[\]\\]+$/;
/** RFC 5322's limit on a line, CRLF excluded. */
const MAX_LINE = 998;

/**
 * The relay of an `smtp://host[:port]` URL (port 25 when none is given); `variable` names the
 * setting in the error.
 *
 * @example
 * smtpRelay('smtp://mail.internal:2525', 'TROUPE_SMTP_URL') // { host: 'mail.internal', port: 2525 }
 */
export function smtpRelay(value: string, variable: string): Pick<SmtpOptions, 'host' | 'port'> {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url?.protocol !== 'smtp:' || url.hostname === '' || url.username !== '' || url.pathname.length > 1) {
    throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `${variable} must look like smtp://host:port, got ${JSON.stringify(value)}`);
  }
  return { host: url.hostname, port: Number(url.port || 25) };
}

interface Reply {
  code: number;
  text: string;
}

/**
 * @example
 * const mailer = new SmtpMailer({ host: '127.0.0.1', port: 2525 });
 * await mailer.send({ from: 'Troupe <troupe@troupe.dev>', to: ['cto@acme.example'], subject, text, date: Date.now(), messageId });
 */
export class SmtpMailer implements Mailer {
  readonly options: SmtpOptions;

  constructor(options: Pick<SmtpOptions, 'host' | 'port'> & Partial<SmtpOptions>) {
    this.options = { ...SMTP_DEFAULTS, ...options };
    const { port, timeoutMs, heloName } = this.options;
    const invalid = (key: string, rule: string, value: unknown) =>
      new RuntimeError(RuntimeErrorCode.InvalidOptions, `SmtpMailer option ${key} ${rule}, got ${JSON.stringify(value)}`);
    if (!(Number.isInteger(port) && port > 0 && port < 65_536)) throw invalid('port', 'must be a TCP port', port);
    if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw invalid('timeoutMs', 'must be a positive integer', timeoutMs);
    if (!/^[A-Za-z0-9.-]+$/.test(heloName)) throw invalid('heloName', 'must be a host name', heloName);
  }

  async send(mail: Mail): Promise<void> {
    const target = mail.to.join(', ');
    const refuse = (message: string) => new DeliveryError('email', target, message, { retriable: false });
    const sender = envelopeAddress(mail.from);
    if (sender === undefined) throw refuse(`the sender ${JSON.stringify(mail.from)} is not an email address`);
    if (mail.to.length === 0) throw refuse('the mail has no recipients');
    const bad = mail.to.find((address) => !ADDRESS.test(address));
    if (bad !== undefined) throw refuse(`the recipient ${JSON.stringify(bad)} is not an email address`);

    const session = new SmtpSession(connect({ host: this.options.host, port: this.options.port }), target, this.options.timeoutMs);
    try {
      await session.expect('greeting', undefined, [220]);
      await session.expect('EHLO', `EHLO ${this.options.heloName}`, [250]);
      await session.expect('MAIL FROM', `MAIL FROM:<${sender}>`, [250]);
      for (const address of mail.to) await session.expect(`RCPT TO ${address}`, `RCPT TO:<${address}>`, [250, 251]);
      await session.expect('DATA', 'DATA', [354]);
      await session.expect('the message', `${formatMessage(mail)}\r\n.`, [250]);
      await session.expect('QUIT', 'QUIT', [221]);
    } finally {
      session.close();
    }
  }
}

/** The message as sent after DATA: headers, a blank line, the body, lines dot-stuffed and ending in CRLF. */
export function formatMessage(mail: Mail): string {
  const lines = mail.text.replace(/\r\n?/g, '\n').split('\n');
  const plain = /^[\x20-\x7e\t]*$/.test(mail.text.replace(/\r?\n/g, '')) && lines.every((line) => line.length <= MAX_LINE);
  const body = plain
    ? lines.map((line) => (line.startsWith('.') ? `.${line}` : line))
    : (Buffer.from(mail.text, 'utf8')
        .toString('base64')
        .match(/.{1,76}/g) ?? []);
  const headers = [
    `From: ${oneLine(mail.from)}`,
    `To: ${mail.to.join(', ')}`,
    `Subject: ${encodeHeader(oneLine(mail.subject))}`,
    `Date: ${new Date(mail.date).toUTCString().replace(/GMT$/, '+0000')}`,
    `Message-ID: <${oneLine(mail.messageId)}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${plain ? '7bit' : 'base64'}`,
  ];
  return [...headers, '', ...body].join('\r\n');
}

/** The address of `Name <address>` or of a bare address. */
function envelopeAddress(from: string): string | undefined {
  const address = /<([^<>]*)>\s*$/.exec(from)?.[1] ?? from.trim();
  return ADDRESS.test(address) ? address : undefined;
}

/** Header values never span lines: a CR or LF in them would start a header of their own. */
function oneLine(value: string): string {
  return value.replace(/[\r\n]+/g, ' ');
}

/** ASCII as it is; anything else as RFC 2047 encoded words of at most 45 bytes each, folded. */
function encodeHeader(value: string): string {
  if (/^[\x20-\x7e]*$/.test(value)) return value;
  const words: string[] = [];
  let word = '';
  for (const char of value) {
    if (Buffer.byteLength(word + char) > 45) {
      words.push(word);
      word = '';
    }
    word += char;
  }
  words.push(word);
  return words.map((part) => `=?UTF-8?B?${Buffer.from(part, 'utf8').toString('base64')}?=`).join('\r\n ');
}

/** One connection: commands written, replies (multi-line ones joined) read in order. */
class SmtpSession {
  private buffer = '';
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;
  private failure: DeliveryError | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly target: string,
    timeoutMs: number,
  ) {
    socket.setEncoding('latin1');
    socket.setTimeout(timeoutMs);
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      const parts = this.buffer.split(/\r?\n/);
      this.buffer = parts.pop() ?? '';
      this.lines.push(...parts);
      this.wake?.();
    });
    const fail = (message: string, cause?: unknown) => {
      this.failure ??= new DeliveryError('email', target, message, { retriable: true, cause });
      this.wake?.();
    };
    socket.on('error', (error) => fail(`SMTP connection failed: ${error.message}`, error));
    socket.on('timeout', () => {
      fail(`the SMTP server did not answer within ${timeoutMs} ms`);
      socket.destroy();
    });
    socket.on('close', () => fail('the SMTP server closed the connection'));
  }

  /** Sends `command` (nothing for the greeting) and checks that the reply's code is one of `codes`. */
  async expect(what: string, command: string | undefined, codes: number[]): Promise<Reply> {
    if (command !== undefined) this.socket.write(`${command}\r\n`, 'utf8');
    const reply = await this.reply();
    if (!codes.includes(reply.code)) {
      throw new DeliveryError('email', this.target, `the SMTP server answered ${what} with ${reply.code} ${reply.text}`, {
        retriable: reply.code < 500,
      });
    }
    return reply;
  }

  close(): void {
    this.socket.destroy();
  }

  private async reply(): Promise<Reply> {
    const texts: string[] = [];
    for (;;) {
      const line = await this.line();
      const match = /^(\d{3})([ -]?)(.*)$/.exec(line);
      if (match === null)
        throw new DeliveryError('email', this.target, `the SMTP server sent ${JSON.stringify(line)}`, { retriable: true });
      texts.push(match[3] ?? '');
      if (match[2] !== '-') return { code: Number(match[1]), text: texts.join(' ') };
    }
  }

  private line(): Promise<string> {
    return new Promise((resolve, reject) => {
      const take = () => {
        const next = this.lines.shift();
        if (next !== undefined) resolve(next);
        else if (this.failure !== undefined) reject(this.failure);
        else return false;
        this.wake = undefined;
        return true;
      };
      if (!take()) this.wake = take;
    });
  }
}
