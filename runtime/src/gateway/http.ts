/**
 * HTTP plumbing over uWS: a request captured before the handler's first await (uWS requests
 * live on the stack of the callback), bodies read with a size limit, and replies written
 * corked, never after the client went away. Handlers return a Reply or throw; errors become
 * responses in errors.ts.
 */
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { errorReply } from './errors.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/** What a handler sees of a request. */
export interface Request {
  method: string;
  /** The path, still percent-encoded. */
  url: string;
  query: URLSearchParams;
  /** Route parameters, in pattern order, percent-decoded. */
  params: string[];
  header(name: string): string;
  /** The parsed JSON body (POST routes only). */
  body: unknown;
}

/** What a handler answers. */
export interface Reply {
  status: string;
  headers: [string, string][];
  body: string | Uint8Array;
}

export type Handler = (request: Request) => Reply | Promise<Reply>;

const API_HEADERS: [string, string][] = [
  ['Content-Type', 'application/json; charset=utf-8'],
  ['Cache-Control', 'no-store'],
  ['X-Content-Type-Options', 'nosniff'],
];

/** A JSON reply. */
export function json(status: string, body: unknown): Reply {
  return { status, headers: API_HEADERS, body: JSON.stringify(body) };
}

/** The headers of a request a handler may read, captured while uWS still holds them. */
const HEADERS = ['authorization', 'content-type', 'content-length', 'accept-encoding', 'if-none-match', 'idempotency-key'] as const;

/**
 * Runs `handler` for a uWS request: captures it, reads a JSON body up to `maxBodyBytes` when
 * `withBody`, and writes the reply or the mapped error.
 */
export function serve(
  res: HttpResponse,
  req: HttpRequest,
  paramCount: number,
  handler: Handler,
  options: { withBody: boolean; maxBodyBytes: number; onError: (error: Error) => void },
): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const headers = new Map(HEADERS.map((name) => [name, req.getHeader(name)]));
  const header = (name: string) => headers.get(name as (typeof HEADERS)[number]) ?? '';
  const rawParams = Array.from({ length: paramCount }, (_, i) => req.getParameter(i));
  const method = req.getMethod();
  const url = req.getUrl();
  const query = new URLSearchParams(req.getQuery());
  const body = options.withBody ? readJson(res, header, options.maxBodyBytes) : Promise.resolve(undefined);
  const write = (reply: Reply, close: boolean) => {
    if (aborted) return;
    res.cork(() => {
      res.writeStatus(reply.status);
      for (const [name, value] of reply.headers) res.writeHeader(name, value);
      res.end(reply.body, close);
    });
  };
  void body
    .then((parsed) => handler({ method, url, query, params: rawParams.map(decodePath), header, body: parsed }))
    .then(
      (reply) => write(reply, false),
      (error: unknown) => {
        const reply = errorReply(error);
        if (reply.internal) options.onError(toError(error));
        const code = reply.body.error.code;
        const extra: [string, string][] = code === RuntimeErrorCode.Unauthenticated ? [['WWW-Authenticate', 'Bearer']] : [];
        // A body larger than allowed is not read to its end: closing is cheaper than draining it.
        write(
          { status: reply.status, headers: [...API_HEADERS, ...extra], body: JSON.stringify(reply.body) },
          code === RuntimeErrorCode.TooLarge,
        );
      },
    );
}

/** Reads the request body as JSON, refusing more than `limit` bytes and anything but application/json. */
function readJson(res: HttpResponse, header: (name: string) => string, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(header('content-length') || '0');
    if (declared > limit) {
      reject(tooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    res.onData((chunk, isLast) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > limit) {
        done = true;
        reject(tooLarge(limit));
        return;
      }
      // uWS neuters the chunk when this callback returns.
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      done = true;
      const text = Buffer.concat(chunks).toString('utf8');
      if (!/^application\/json\b/i.test(header('content-type'))) {
        reject(new RuntimeError(RuntimeErrorCode.InvalidArgument, 'the body must be JSON, sent with Content-Type: application/json'));
        return;
      }
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new RuntimeError(RuntimeErrorCode.InvalidArgument, 'the body is not valid JSON'));
      }
    });
  });
}

function tooLarge(limit: number): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.TooLarge, `the body is larger than ${limit} bytes`);
}

/** Percent-decodes a path segment; malformed encoding is the caller's error, not ours. */
export function decodePath(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `"${value.slice(0, 80)}" is not valid percent-encoding`);
  }
}
