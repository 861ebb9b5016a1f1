/**
 * Test fixtures of delivery: real servers on loopback — a git daemon serving bare repositories
 * over git://, git's smart HTTP behind Basic auth, an SMTP server (Python's stdlib smtpd) that prints each message it takes, and an
 * HTTP endpoint that records webhooks and fails the first attempts of each. Tests only;
 * production code never imports this.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { devNull } from 'node:os';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { freePort } from '@troupe/harness';
import { eventually } from '../../testing/eventually.js';

const run = promisify(execFile);

/** git with no user or system configuration, as the pusher runs it. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const env = { ...process.env, GIT_CONFIG_GLOBAL: devNull, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };
  const { stdout } = await run('git', args, { cwd, env });
  return stdout.trim();
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

export interface GitDaemon {
  /** The git:// URL of a repository under the daemon's base path, e.g. `shop.git`. */
  url(repository: string): string;
  stop(): Promise<void>;
}

/** `git daemon` serving every repository under `basePath` (made if missing) on a free loopback port, pushes allowed. */
export async function startGitDaemon(basePath: string): Promise<GitDaemon> {
  mkdirSync(basePath, { recursive: true });
  const port = await freePort();
  const child = spawn(
    'git',
    [
      'daemon',
      '--export-all',
      '--enable=receive-pack',
      `--base-path=${basePath}`,
      '--listen=127.0.0.1',
      `--port=${port}`,
      '--reuseaddr',
      basePath,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = (repository: string) => `git://127.0.0.1:${port}/${repository}`;
  try {
    // Ready once it takes connections.
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`git daemon exited: ${stderr}`);
      const socket = connect({ host: '127.0.0.1', port });
      try {
        await once(socket, 'connect');
      } finally {
        socket.destroy();
      }
    }, 10_000);
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return { url, stop: () => stopProcess(child) };
}

export interface GitHttpServer {
  /** The http:// URL of a repository under the server's root, with no credentials in it. */
  url(repository: string): string;
  /** Requests refused for want of the right credentials. */
  readonly refused: number;
  stop(): Promise<void>;
}

/**
 * Smart HTTP for the repositories under `root`: `git http-backend` as a CGI behind Basic auth
 * that only `username:password` passes.
 */
export async function startGitHttpServer(root: string, credentials: { username: string; password: string }): Promise<GitHttpServer> {
  const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  let refused = 0;
  const server = createServer((request, response) => {
    if (request.headers.authorization !== expected) {
      refused += 1;
      response.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
      return;
    }
    const url = new URL(request.url ?? '/', 'http://localhost');
    const header = (name: string) => request.headers[name]?.toString();
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_CONFIG_GLOBAL: devNull,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        // A REMOTE_USER is what lets http-backend take pushes.
        REMOTE_USER: credentials.username,
        REMOTE_ADDR: '127.0.0.1',
        REQUEST_METHOD: request.method,
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: header('content-type') ?? '',
        ...(header('content-length') === undefined ? {} : { CONTENT_LENGTH: header('content-length') }),
        ...(header('content-encoding') === undefined ? {} : { HTTP_CONTENT_ENCODING: header('content-encoding') }),
        ...(header('git-protocol') === undefined ? {} : { GIT_PROTOCOL: header('git-protocol') }),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    request.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let started = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (started) return void response.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      started = true;
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^Status: (\d{3})/m.exec(lines.join('\n'))?.[1] ?? 200);
      const headers = lines.filter((line) => !line.startsWith('Status:')).map((line) => line.split(/:\s*/, 2) as [string, string]);
      response.writeHead(status, headers.flat());
      response.write(head.subarray(end + 4));
    });
    cgi.stdout.on('end', () => response.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the git HTTP server has no TCP address');
  return {
    url: (repository) => `http://127.0.0.1:${address.port}/${repository}`,
    get refused() {
      return refused;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The message as the server took it, headers and body. */
  data: string;
}

export interface SmtpServer {
  port: number;
  /** Every message taken so far. */
  readonly mails: readonly ReceivedMail[];
  stop(): Promise<void>;
}

/** Refuses every message to an address starting with `reject`, with 550, after DATA. */
const SMTP_SERVER = `
import asyncore, json, smtpd, sys

class Recorder(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        if any(address.startswith('reject') for address in rcpttos):
            return '550 no such mailbox here'
        print(json.dumps({'from': mailfrom, 'to': rcpttos, 'data': data.decode('utf-8')}), flush=True)

Recorder(('127.0.0.1', int(sys.argv[1])), None, decode_data=False)
print('READY', flush=True)
asyncore.loop()
`;

/** A real SMTP server process: Python 3.11's stdlib smtpd, printing each message as a JSON line. */
export async function startSmtpServer(): Promise<SmtpServer> {
  const port = await freePort();
  const child = spawn('python3', ['-W', 'ignore::DeprecationWarning', '-c', SMTP_SERVER, String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const mails: ReceivedMail[] = [];
  let ready = false;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line === 'READY') ready = true;
    else mails.push(JSON.parse(line) as ReceivedMail);
  });
  try {
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`the SMTP server exited: ${stderr}`);
      if (!ready) throw new Error('the SMTP server is not ready yet');
    }, 10_000);
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return { port, mails, stop: () => stopProcess(child) };
}

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
  /** The status the endpoint answered. */
  status: number;
}

export interface WebhookEndpoint {
  url: string;
  /** Every request so far, answered or refused. */
  readonly requests: readonly ReceivedWebhook[];
  /** The bodies taken (answered 2xx), by event id. */
  readonly accepted: ReadonlyMap<string, string[]>;
  /** `down`: 503 to everything; `flaky`: 500 to the first `failures` attempts of each event id, then 204. */
  mode: 'down' | 'flaky';
  stop(): Promise<void>;
}

/** An HTTP endpoint that records webhooks; see `mode` for how it answers. */
export async function startWebhookEndpoint(options: { failures: number; mode: WebhookEndpoint['mode'] }): Promise<WebhookEndpoint> {
  const requests: ReceivedWebhook[] = [];
  const accepted = new Map<string, string[]>();
  const attempts = new Map<string, number>();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(request.headers['x-troupe-event-id'] ?? '');
      const attempt = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, attempt);
      const status = endpoint.mode === 'down' ? 503 : attempt <= options.failures ? 500 : 204;
      requests.push({ headers: request.headers, body, status });
      if (status === 204) accepted.set(id, [...(accepted.get(id) ?? []), body]);
      response.writeHead(status).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the webhook endpoint has no TCP address');
  const endpoint: WebhookEndpoint = {
    url: `http://127.0.0.1:${address.port}/hooks/troupe`,
    requests,
    accepted,
    mode: options.mode,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return endpoint;
}

/** Whether `headers` carry the HMAC-SHA256 of `body` under `secret`, computed here independently. */
export function signedWith(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  return headers['x-troupe-signature'] === `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
