/**
 * The RuntimeService gRPC server: the operator and the CLI reach the runtime through it. It
 * serves a RuntimeApi, and maps the runtime's errors to gRPC status codes in one place.
 */
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { RuntimeServiceService, ServingStatus, type RuntimeServiceServer } from '@troupe/proto';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { RuntimeApi } from './runtime-api.js';

const STATUS: Partial<Record<RuntimeErrorCode, status>> = {
  [RuntimeErrorCode.InvalidArgument]: status.INVALID_ARGUMENT,
  [RuntimeErrorCode.InvalidOptions]: status.INVALID_ARGUMENT,
  [RuntimeErrorCode.NotFound]: status.NOT_FOUND,
  [RuntimeErrorCode.Unavailable]: status.UNAVAILABLE,
  [RuntimeErrorCode.AskTimeout]: status.DEADLINE_EXCEEDED,
  [RuntimeErrorCode.Closed]: status.UNAVAILABLE,
  [RuntimeErrorCode.BudgetExceeded]: status.RESOURCE_EXHAUSTED,
};

/** A RuntimeError (or anything thrown) as a gRPC error. */
export function grpcError(thrown: unknown): { code: status; details: string } {
  const error = toError(thrown);
  const code = error instanceof RuntimeError ? (STATUS[error.code] ?? status.INTERNAL) : status.INTERNAL;
  return { code, details: error.message };
}

function unary<Request, Response>(handle: (request: Request) => Promise<Response>) {
  return (call: ServerUnaryCall<Request, Response>, callback: sendUnaryData<Response>) => {
    handle(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => callback(grpcError(error)),
    );
  };
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `${field} is required`);
  return value;
}

/**
 * The open WatchProject streams. They never end on their own: a server that stops ends them, so
 * that watchers reconnect to another replica.
 */
class OpenStreams {
  private readonly ends = new Set<() => void>();
  private ended = false;

  /** Keeps `end` until the returned function forgets it; calls it at once when the streams have been ended. */
  add(end: () => void): () => void {
    if (this.ended) end();
    else this.ends.add(end);
    return () => this.ends.delete(end);
  }

  endAll(): void {
    this.ended = true;
    for (const end of this.ends) end();
    this.ends.clear();
  }
}

export function runtimeService(api: RuntimeApi, version: string, streams = new OpenStreams()): RuntimeServiceServer {
  return {
    submitProject: unary(async (request) => {
      await api.submitProject(request.commandId, required(request.command, 'command'));
      return { commandId: request.commandId };
    }),
    cancelProject: unary(async (request) => {
      await api.cancelProject(request.commandId, required(request.command, 'command'));
      return { commandId: request.commandId };
    }),
    approve: unary(async (request) => {
      await api.approve(request.commandId, required(request.command, 'command'));
      return { commandId: request.commandId };
    }),
    getProject: unary(async (request) => {
      const project = await api.getProject(request.namespace, request.name);
      if (project === undefined)
        throw new RuntimeError(RuntimeErrorCode.NotFound, `project ${request.namespace}/${request.name} not found`);
      return { status: project.status };
    }),
    listProjects: unary(async (request) => ({ projects: await api.listProjects(request.namespace || undefined) })),
    listPools: unary(async (request) => ({ pools: await api.listPools(request.namespace || undefined) })),
    health: unary(async () => ({ status: ServingStatus.SERVING, version, components: [] })),
    watchProject: (call) => {
      const { namespace, name, afterSequence } = call.request;
      // Nothing is written once the stream ended: events may still arrive while the watch stops.
      let open = true;
      void (async () => {
        const stop = await api.watch({ namespace, project: name }, (event) => {
          if (open && event.sequence > afterSequence) call.write({ update: { $case: 'event', value: event } });
        });
        const forget = streams.add(() => {
          open = false;
          void stop();
          call.end();
        });
        call.on('cancelled', () => {
          open = false;
          forget();
          void stop();
        });
        const project = await api.getProject(namespace, name);
        if (open && project?.status) call.write({ update: { $case: 'snapshot', value: project.status } });
      })().catch((error: unknown) => call.destroy(Object.assign(new Error(grpcError(error).details), grpcError(error))));
    },
  };
}

export interface GrpcServerHandle {
  /** host:port it listens on. */
  address: string;
  /** Takes no new calls, ends the WatchProject streams, and resolves once the calls in flight have finished. */
  close(): Promise<void>;
}

/** Serves `api` on 127.0.0.1:`port` (0: any free port), without TLS: put it behind the cluster's network policy. */
export async function startGrpcServer(
  api: RuntimeApi,
  options: { host?: string; port: number; version?: string },
): Promise<GrpcServerHandle> {
  const server = new Server();
  const streams = new OpenStreams();
  server.addService(RuntimeServiceService, runtimeService(api, options.version ?? '0.1.0', streams));
  const host = options.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${options.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    address: `${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        streams.endAll();
      }),
  };
}
