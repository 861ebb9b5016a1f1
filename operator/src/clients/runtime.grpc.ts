/**
 * RuntimeClient over the runtime's gRPC RuntimeService (ts-proto client on @grpc/grpc-js), each
 * call carrying the bearer token the runtime checks (metadata `authorization: Bearer …`). The
 * one place gRPC statuses become operator errors.
 */
import { Metadata, credentials, status as GrpcStatus, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import {
  RuntimeServiceClient,
  type Approve,
  type ArchivePart,
  type CancelProject,
  type GetProjectResponse,
  type ImportProjectResponse,
  type ListPoolsResponse,
  type PoolEntry,
  type ProjectStatus,
  type SubmitProject,
} from '@troupe/proto';
import { OperatorError, OperatorErrorCode, checkOption, isPositiveInteger } from '../errors.js';
import { tracingInterceptor } from '../kube/tracing.js';
import type { ProjectStream, ProjectStreamHandlers, RuntimeClient } from './runtime.js';

export interface GrpcRuntimeClientOptions {
  /** host:port of RuntimeService, e.g. `troupe-runtime:50051`. */
  address: string;
  /** Unary calls fail after this long (default 5 s). */
  deadlineMs: number;
  /** Default: plaintext, for in-cluster traffic behind a NetworkPolicy or a mesh. */
  credentials: ChannelCredentials;
  /** Longest wait between reconnection attempts to an unreachable runtime (default 10 s). */
  maxReconnectBackoffMs: number;
  /**
   * The bearer token every call carries (the runtime refuses calls without one), or a token
   * source asked before each call — so that a process able to sign tokens never sends an expired
   * one (e.g. `Tokens.renewing` of @troupe/proto).
   */
  token?: string | (() => string);
}

export const GRPC_RUNTIME_CLIENT_DEFAULTS = {
  deadlineMs: 5_000,
  maxReconnectBackoffMs: 10_000,
} as const satisfies Partial<GrpcRuntimeClientOptions>;

/**
 * @example
 * const token = new Tokens({ secret, ttlSeconds: 3600 }).renewing({ sub: 'system:troupe-operator', role: 'admin' });
 * const runtime = new GrpcRuntimeClient({ address: 'troupe-runtime:50051', token });
 * await runtime.submitProject(`submit/${uid}/${generation}`, command);
 */
export class GrpcRuntimeClient implements RuntimeClient {
  readonly options: GrpcRuntimeClientOptions;
  private readonly client: RuntimeServiceClient;

  constructor(options: Pick<GrpcRuntimeClientOptions, 'address'> & Partial<GrpcRuntimeClientOptions>) {
    this.options = { ...GRPC_RUNTIME_CLIENT_DEFAULTS, credentials: credentials.createInsecure(), ...options };
    validate(this.options);
    this.client = new RuntimeServiceClient(this.options.address, this.options.credentials, {
      // grpc-js backs off up to 120 s by default: a runtime that comes up would stay unused that long.
      'grpc.max_reconnect_backoff_ms': this.options.maxReconnectBackoffMs,
      'grpc.keepalive_time_ms': 30_000,
      interceptors: [tracingInterceptor],
    });
  }

  async submitProject(commandId: string, command: SubmitProject): Promise<void> {
    await this.unary('SubmitProject', (deadline, done) =>
      this.client.submitProject({ commandId, command }, this.metadata(), { deadline }, done),
    );
  }

  async cancelProject(commandId: string, command: CancelProject): Promise<void> {
    try {
      await this.unary('CancelProject', (deadline, done) =>
        this.client.cancelProject({ commandId, command }, this.metadata(), { deadline }, done),
      );
    } catch (error) {
      if (!(error instanceof RuntimeCallError && error.grpcCode === GrpcStatus.NOT_FOUND)) throw error;
    }
  }

  async approve(commandId: string, command: Approve): Promise<void> {
    await this.unary('Approve', (deadline, done) => this.client.approve({ commandId, command }, this.metadata(), { deadline }, done));
  }

  async getProject(namespace: string, name: string): Promise<ProjectStatus | undefined> {
    try {
      const response = await this.unary<GetProjectResponse>('GetProject', (deadline, done) =>
        this.client.getProject({ namespace, name }, this.metadata(), { deadline }, done),
      );
      return response.status;
    } catch (error) {
      if (error instanceof RuntimeCallError && error.grpcCode === GrpcStatus.NOT_FOUND) return undefined;
      throw error;
    }
  }

  watchProject(namespace: string, name: string, handlers: ProjectStreamHandlers): ProjectStream {
    const call = this.client.watchProject({ namespace, name, afterSequence: 0 }, this.metadata());
    let closed = false;
    let ended = false;
    const end = (error: OperatorError | undefined) => {
      if (closed || ended) return;
      ended = true;
      handlers.onEnd(error);
    };
    call.on('data', (update) => {
      if (!closed) handlers.onUpdate(update);
    });
    call.on('error', (error: ServiceError) => end(callError('WatchProject', error)));
    call.on('end', () => end(undefined));
    return {
      close() {
        closed = true;
        call.cancel();
      },
    };
  }

  async listPools(namespace?: string): Promise<PoolEntry[]> {
    const response = await this.unary<ListPoolsResponse>('ListPools', (deadline, done) =>
      this.client.listPools({ namespace: namespace ?? '' }, this.metadata(), { deadline }, done),
    );
    return response.pools;
  }

  /**
   * The project's archive (proto backup.proto), part by part, as ExportProject streams it; a
   * refusal ends it with a RuntimeCallError (NOT_FOUND when the runtime does not know the
   * project). Stopping the iteration early cancels the call.
   */
  async *exportProject(namespace: string, name: string): AsyncGenerator<ArchivePart> {
    const call = this.client.exportProject({ namespace, name }, this.metadata());
    let ended = false;
    try {
      for await (const response of call as AsyncIterable<{ part?: ArchivePart }>) if (response.part !== undefined) yield response.part;
      ended = true;
    } catch (error) {
      ended = true;
      throw callError('ExportProject', error as ServiceError);
    } finally {
      if (!ended) call.cancel();
    }
  }

  /**
   * Sends an archive's parts to ImportProject, the first naming the namespace to restore the
   * project into (undefined: the archive's), no faster than the runtime reads them. A failure
   * to read `parts` cancels the call and rejects with it.
   */
  importProject(parts: AsyncIterable<ArchivePart>, namespace: string | undefined): Promise<ImportProjectResponse> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let wake = () => {};
      const call = this.client.importProject(this.metadata(), (error, response) => {
        settled = true;
        wake();
        if (error) reject(callError('ImportProject', error));
        else resolve(response);
      });
      call.on('drain', () => wake());
      void (async () => {
        let first = true;
        for await (const part of parts) {
          // The runtime answered already (a refusal): the rest of the archive is of no use.
          if (settled) return;
          const writable = call.write({ namespace: first ? (namespace ?? '') : '', part });
          first = false;
          if (!writable) await new Promise<void>((drained) => (wake = drained));
        }
        if (!settled) call.end();
      })().catch((error: unknown) => {
        settled = true;
        call.cancel();
        reject(error);
      });
    });
  }

  close(): void {
    this.client.close();
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    const { token } = this.options;
    const value = typeof token === 'function' ? token() : token;
    if (value !== undefined) metadata.set('authorization', `Bearer ${value}`);
    return metadata;
  }

  private unary<R>(method: string, call: (deadline: Date, done: (error: ServiceError | null, response: R) => void) => void): Promise<R> {
    return new Promise((resolve, reject) => {
      call(new Date(Date.now() + this.options.deadlineMs), (error, response) =>
        error ? reject(callError(method, error)) : resolve(response),
      );
    });
  }
}

/** A failed RuntimeService call, with the gRPC status code it ended with. */
export class RuntimeCallError extends OperatorError {
  override name = 'RuntimeCallError';

  constructor(
    code: OperatorErrorCode,
    readonly method: string,
    readonly grpcCode: number,
    message: string,
    options: { retriable: boolean; cause: unknown },
  ) {
    super(code, `RuntimeService/${method}: ${message}`, options);
  }
}

const REJECTED: ReadonlySet<number> = new Set([
  GrpcStatus.INVALID_ARGUMENT,
  GrpcStatus.FAILED_PRECONDITION,
  GrpcStatus.OUT_OF_RANGE,
  GrpcStatus.ALREADY_EXISTS,
  GrpcStatus.UNIMPLEMENTED,
  GrpcStatus.NOT_FOUND,
]);

const FORBIDDEN: ReadonlySet<number> = new Set([GrpcStatus.PERMISSION_DENIED, GrpcStatus.UNAUTHENTICATED]);

/**
 * gRPC status → operator error: refusals of the command are final; a refused token says nothing
 * of the command and may pass once renewed; everything else may pass on a retry.
 */
function callError(method: string, error: ServiceError): RuntimeCallError {
  const rejected = REJECTED.has(error.code);
  const code = rejected
    ? OperatorErrorCode.RuntimeRejected
    : FORBIDDEN.has(error.code)
      ? OperatorErrorCode.RuntimeForbidden
      : OperatorErrorCode.RuntimeUnavailable;
  return new RuntimeCallError(code, method, error.code, error.details || error.message, { retriable: !rejected, cause: error });
}

function validate(options: GrpcRuntimeClientOptions): void {
  const component = 'GrpcRuntimeClient';
  checkOption(
    /^[^\s]+:\d+$/.test(options.address.replace(/^dns:\/{0,3}|^ipv4:|^ipv6:/, '')),
    component,
    'address',
    'must be host:port',
    options.address,
  );
  for (const key of ['deadlineMs', 'maxReconnectBackoffMs'] as const)
    checkOption(isPositiveInteger(options[key]), component, key, 'must be a positive integer', options[key]);
  // The value is not shown: it is a credential.
  checkOption(
    options.token === undefined || typeof options.token === 'function' || /^\S+$/.test(options.token),
    component,
    'token',
    'must be a non-empty token without spaces',
  );
}
