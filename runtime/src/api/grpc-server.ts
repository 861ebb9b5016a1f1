/**
 * The RuntimeService gRPC server: the operator and the CLI reach the runtime through it. It
 * serves a RuntimeApi to callers with a bearer token (`authorization: Bearer <token>` metadata,
 * the gateway's tokens and roles, access.ts), checks each request before acting on it
 * (grpc-requests.ts), and maps the runtime's errors to gRPC status codes — redacted — in one
 * place.
 */
import {
  Server,
  ServerCredentials,
  status,
  type Metadata,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { RuntimeServiceService, ServingStatus, type ImportProjectRequest, type RuntimeServiceServer } from '@troupe/proto';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { authorize, identityOf, readScope } from '../gateway/access.js';
import type { Identity } from '../gateway/protocol.js';
import type { Tokens } from '../gateway/tokens.js';
import { withDefaults } from '../llm/options.js';
import { redact } from '../security/redact.js';
import { traceServerCall } from '../tracing/runtime-tracing.js';
import { checkApprove, checkCancel, checkSubmit, commandIdField, listNamespace, nameField, namespaceField } from './grpc-requests.js';
import type { RuntimeApi, StopWatching } from './runtime-api.js';

const STATUS: Partial<Record<RuntimeErrorCode, status>> = {
  [RuntimeErrorCode.InvalidArgument]: status.INVALID_ARGUMENT,
  [RuntimeErrorCode.InvalidOptions]: status.INVALID_ARGUMENT,
  [RuntimeErrorCode.NotFound]: status.NOT_FOUND,
  [RuntimeErrorCode.AlreadyExists]: status.ALREADY_EXISTS,
  [RuntimeErrorCode.Unavailable]: status.UNAVAILABLE,
  [RuntimeErrorCode.AskTimeout]: status.DEADLINE_EXCEEDED,
  [RuntimeErrorCode.Closed]: status.UNAVAILABLE,
  [RuntimeErrorCode.BudgetExceeded]: status.RESOURCE_EXHAUSTED,
  [RuntimeErrorCode.Unauthenticated]: status.UNAUTHENTICATED,
  [RuntimeErrorCode.PermissionDenied]: status.PERMISSION_DENIED,
  [RuntimeErrorCode.TooLarge]: status.RESOURCE_EXHAUSTED,
  [RuntimeErrorCode.ResourceExhausted]: status.RESOURCE_EXHAUSTED,
  [RuntimeErrorCode.RateLimited]: status.RESOURCE_EXHAUSTED,
};

/** setTimeout's ceiling; a token living longer than this simply is not timed out early. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A RuntimeError (or anything thrown) as a gRPC error, its message redacted. */
export function grpcError(thrown: unknown): { code: status; details: string } {
  const error = toError(thrown);
  const code = error instanceof RuntimeError ? (STATUS[error.code] ?? status.INTERNAL) : status.INTERNAL;
  return { code, details: redact(error.message) };
}

/** What every call is checked with. */
interface CallChecks {
  tokens: Tokens;
  now: () => number;
}

/** The caller a call's `authorization` metadata names; Unauthenticated when it names none, or a bad token. */
function authenticate(checks: CallChecks, metadata: Metadata): Identity {
  const [authorization, ...more] = metadata.get('authorization');
  if (typeof authorization !== 'string' || more.length > 0 || !/^bearer /i.test(authorization)) {
    throw new RuntimeError(RuntimeErrorCode.Unauthenticated, 'send the token as the metadata authorization: Bearer <token>');
  }
  return identityOf(checks.tokens.verify(authorization.slice(7).trim()));
}

/**
 * A request message that did not decode. grpc-js would answer a request it cannot decode with
 * INTERNAL, as if it were the server's fault; the handler refuses it as INVALID_ARGUMENT.
 */
class Undecodable {
  constructor(
    readonly method: string,
    readonly reason: string,
  ) {}
}

function decoded<Request>(request: Request | Undecodable): Request {
  if (request instanceof Undecodable)
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `the request to ${request.method} is not a valid message: ${request.reason}`);
  return request;
}

/** `definition` with request decoding that hands the handler an Undecodable instead of throwing. */
function tolerantDecoding<Definition extends ServiceDefinition>(definition: Definition): Definition {
  return Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [
      name,
      {
        ...method,
        requestDeserialize: (bytes: Buffer) => {
          try {
            return method.requestDeserialize(bytes);
          } catch (error) {
            return new Undecodable(method.path, toError(error).message);
          }
        },
      },
    ]),
  ) as Definition;
}

/** A unary handler: its caller is authenticated and its request decoded before it runs; it authorizes what the request asks. */
function unary<Request, Response>(checks: CallChecks, handle: (request: Request, caller: Identity) => Promise<Response>) {
  return (call: ServerUnaryCall<Request, Response>, callback: sendUnaryData<Response>) => {
    // In a span that continues the caller's trace, so that what the handler tells an actor carries it on.
    traceServerCall(call, async () => {
      const caller = authenticate(checks, call.metadata);
      return handle(decoded(call.request), caller);
    }).then(
      (response) => callback(null, response),
      (error: unknown) => callback(grpcError(error)),
    );
  };
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

/**
 * The RuntimeService's handlers. Each RPC states who may call it: reads are filtered to, or
 * refused outside, the caller's namespaces; writes need the role's right (access.ts ROLES).
 */
export function runtimeService(api: RuntimeApi, version: string, checks: CallChecks, streams = new OpenStreams()): RuntimeServiceServer {
  return {
    submitProject: unary(checks, async (request, caller) => {
      const command = checkSubmit(request.command);
      authorize(caller, 'submit', command.namespace);
      const commandId = commandIdField(request.commandId, 'submit');
      await api.submitProject(commandId, command);
      return { commandId };
    }),
    cancelProject: unary(checks, async (request, caller) => {
      const command = checkCancel(request.command);
      authorize(caller, 'cancel', command.namespace);
      const commandId = commandIdField(request.commandId, 'cancel');
      await api.cancelProject(commandId, command);
      return { commandId };
    }),
    approve: unary(checks, async (request, caller) => {
      const command = checkApprove(request.command);
      authorize(caller, 'approve', command.namespace);
      const commandId = commandIdField(request.commandId, 'approve');
      // A client approves as itself; a platform role (the operator) relays who approved.
      const approvedBy = caller.role === 'client' || command.approvedBy === '' ? caller.sub : command.approvedBy;
      await api.approve(commandId, { ...command, approvedBy });
      return { commandId };
    }),
    getProject: unary(checks, async (request, caller) => {
      const namespace = namespaceField(request.namespace, 'namespace');
      const name = nameField(request.name, 'name');
      authorize(caller, 'read', namespace);
      const project = await api.getProject(namespace, name);
      if (project === undefined) throw new RuntimeError(RuntimeErrorCode.NotFound, `project ${namespace}/${name} not found`);
      return { status: project.status };
    }),
    listProjects: unary(checks, async (request, caller) => ({
      projects: await api.listProjects(readScope(caller, listNamespace(request.namespace))),
    })),
    listPools: unary(checks, async (request, caller) => ({
      pools: await api.listPools(readScope(caller, listNamespace(request.namespace))),
    })),
    health: unary(checks, async () => ({ status: ServingStatus.SERVING, version, components: [] })),
    // An archive holds a project's journals: reading it takes what reading the project does.
    exportProject: (call) => {
      let open = true;
      call.on('cancelled', () => (open = false));
      void (async () => {
        const caller = authenticate(checks, call.metadata);
        const request = decoded(call.request);
        const namespace = namespaceField(request.namespace, 'namespace');
        const name = nameField(request.name, 'name');
        authorize(caller, 'read', namespace);
        for await (const part of api.exportProject(namespace, name)) {
          if (!open) return;
          // A slow reader holds the export back rather than filling this process's memory.
          if (!call.write({ part })) await drained(call);
        }
        call.end();
      })().catch((error: unknown) => {
        const { code, details } = grpcError(error);
        call.emit('error', Object.assign(new Error(details), { code, details }));
      });
    },
    // Restoring a project creates it: that takes the right to submit one in the namespace it lands in.
    importProject: (call, callback) => {
      const caller = () => authenticate(checks, call.metadata);
      async function* requests(identity: Identity): AsyncGenerator<ImportProjectRequest> {
        let authorized = false;
        for await (const received of call) {
          const request = decoded<ImportProjectRequest>(received);
          if (!authorized) {
            const header = request.part?.part?.$case === 'header' ? request.part.part.value : undefined;
            authorize(identity, 'submit', namespaceField(request.namespace || (header?.project?.namespace ?? ''), 'namespace'));
            authorized = true;
          }
          yield request;
        }
      }
      Promise.resolve()
        .then(() => api.importProject(requests(caller())))
        .then(
          (response) => callback(null, response),
          (error: unknown) => callback(grpcError(error)),
        );
    },
    watchProject: (call) => {
      // Nothing is written once the stream ended: events may still arrive while the watch stops.
      let open = true;
      let stop: StopWatching | undefined;
      let expiry: NodeJS.Timeout | undefined;
      let forget = () => {};
      const close = () => {
        if (!open) return;
        open = false;
        clearTimeout(expiry);
        forget();
        void stop?.();
      };
      const fail = (error: unknown) => {
        if (!open) return;
        close();
        const { code, details } = grpcError(error);
        call.emit('error', Object.assign(new Error(details), { code, details }));
      };
      call.on('cancelled', close);
      void (async () => {
        const caller = authenticate(checks, call.metadata);
        const request = decoded(call.request);
        const namespace = namespaceField(request.namespace, 'namespace');
        const name = nameField(request.name, 'name');
        authorize(caller, 'read', namespace);
        if (!Number.isSafeInteger(request.afterSequence) || request.afterSequence < 0)
          throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `afterSequence must be an integer ≥ 0, got ${request.afterSequence}`);
        stop = await api.watch({ namespace, project: name }, (event) => {
          if (open && event.sequence > request.afterSequence) call.write({ update: { $case: 'event', value: event } });
        });
        if (!open) {
          void stop();
          return;
        }
        forget = streams.add(() => {
          close();
          call.end();
        });
        if (!open) return;
        // Like the gateway's stream, a watch lives no longer than its token: the watcher reconnects with a fresh one.
        const ttl = caller.expiresAt - checks.now();
        if (ttl < MAX_TIMER_MS)
          expiry = setTimeout(() => fail(new RuntimeError(RuntimeErrorCode.Unauthenticated, 'the token has expired')), ttl).unref();
        const project = await api.getProject(namespace, name);
        if (open && project?.status) call.write({ update: { $case: 'snapshot', value: project.status } });
      })().catch(fail);
    },
  };
}

/** Resolves once `stream` takes writes again, or its call is cancelled. */
function drained(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('cancelled', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('cancelled', done);
  });
}

export interface GrpcServerOptions {
  /** Verifies the bearer token of every call; the gateways' Tokens, with the same secret. */
  tokens: Tokens;
  /** 0 picks a free port. */
  port: number;
  host?: string;
  /** What Health reports. */
  version?: string;
  /** Largest request message, in bytes; a larger one is refused with RESOURCE_EXHAUSTED before it is decoded. */
  maxReceiveMessageBytes?: number;
  /** Unix ms; a WatchProject stream ends when its token expires. */
  now?: () => number;
}

export const GRPC_SERVER_DEFAULTS = {
  host: '127.0.0.1',
  version: '0.1.0',
  // A SubmitProject is a brief of at most 20000 characters and a bounded spec: far below this.
  maxReceiveMessageBytes: 1024 * 1024,
  now: Date.now,
} as const satisfies Partial<GrpcServerOptions>;

export interface GrpcServerHandle {
  /** host:port it listens on. */
  address: string;
  /** Takes no new calls, ends the WatchProject streams, and resolves once the calls in flight have finished. */
  close(): Promise<void>;
}

/**
 * Serves `api` on `host` (default 127.0.0.1) at `port`, without TLS: put it behind the cluster's
 * network policy or a mesh. Every call needs a bearer token `tokens` verifies.
 *
 * @example
 * const grpc = await startGrpcServer(company, { tokens, port: 50051 });
 * // a client sends metadata `authorization: Bearer ${tokens.sign({ sub: 'operator', role: 'admin' })}`
 */
export async function startGrpcServer(api: RuntimeApi, options: GrpcServerOptions): Promise<GrpcServerHandle> {
  const settings = withDefaults(GRPC_SERVER_DEFAULTS, options);
  if (settings.tokens === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidOptions, 'gRPC server option tokens is required');
  if (!Number.isInteger(settings.maxReceiveMessageBytes) || settings.maxReceiveMessageBytes < 1) {
    throw new RuntimeError(
      RuntimeErrorCode.InvalidOptions,
      `gRPC server option maxReceiveMessageBytes must be a positive integer, got ${settings.maxReceiveMessageBytes}`,
    );
  }
  const server = new Server({ 'grpc.max_receive_message_length': settings.maxReceiveMessageBytes });
  const streams = new OpenStreams();
  server.addService(
    tolerantDecoding(RuntimeServiceService),
    runtimeService(api, settings.version, { tokens: settings.tokens, now: settings.now }, streams),
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${settings.host}:${settings.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    address: `${settings.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        streams.endAll();
      }),
  };
}
