/**
 * A node's operations endpoint, apart from the ports that serve users: `GET /metrics` (the
 * Prometheus text format), `GET /healthz` (liveness) and `GET /readyz` (readiness), the probes
 * answering 200 or 503 with a JSON body that names each check.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { Health, ProbeReport } from './health.js';

export interface OpsServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  health: Health;
  /** The metrics exposition and its content type. */
  metrics: { contentType: string; exposition(): Promise<string> };
  onError: (error: Error) => void;
}

/** A listening ops server. */
export interface OpsServer {
  /** `http://host:port`. */
  url: string;
  close(): Promise<void>;
}

/**
 * @example
 * const ops = await startOpsServer({ host: '0.0.0.0', port: 8081, health, metrics, onError: console.error });
 * await ops.close();
 */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { health, metrics } = options;
  const probe = (response: ServerResponse, report: ProbeReport) => {
    response.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    response.end(`${JSON.stringify(report.body)}\n`);
  };
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://ops').pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const answer = async () => {
      switch (path) {
        case '/healthz':
          return probe(response, health.liveness());
        case '/readyz':
          return probe(response, await health.readiness());
        case '/metrics': {
          const body = await metrics.exposition();
          response.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
          return void response.end(body);
        }
        default:
          response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics, /healthz or /readyz\n');
      }
    };
    answer().catch((thrown: unknown) => {
      const error = toError(thrown);
      options.onError(error);
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`${error.message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause) =>
      reject(
        new RuntimeError(
          RuntimeErrorCode.Unavailable,
          `the ops server cannot listen on ${options.host}:${options.port}: ${cause.message}`,
          { cause },
        ),
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
