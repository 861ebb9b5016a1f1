/**
 * What every CLI command works with: the Kubernetes client for the kubeconfig's cluster (the
 * embedded resource server or a real API server), the kinds and the CRD validator from crds/,
 * the namespace to act in, the runtime's gRPC address and token for `logs`, and where output goes.
 */
import { existsSync } from 'node:fs';
import { GrpcRuntimeClient } from '../clients/runtime.grpc.js';
import { readKubeconfig } from '../embedded/kubeconfig.js';
import { KubeClient, type ResourceType } from '../kube/client.js';
import { Informer } from '../kube/informer.js';
import type { KubeObject } from '../kube/types.js';
import { CrdValidator } from '../schema/validator.js';
import { CliError, ExitCode } from './exit-codes.js';
import { KindCatalog } from './kinds.js';

export interface CliContext {
  client: KubeClient;
  catalog: KindCatalog;
  validator: CrdValidator;
  /** `-n`, else the kubeconfig context's namespace, else `default`. */
  namespace: string;
  /** Whether `-n` was given (a manifest's own namespace must then agree with it). */
  namespaceExplicit: boolean;
  /** The RuntimeService address, or undefined when neither a flag nor the kubeconfig names one. */
  runtimeAddress: string | undefined;
  /** The bearer token of RuntimeService calls: TROUPE_RUNTIME_TOKEN, else the kubeconfig's. */
  runtimeToken: string | undefined;
  out: NodeJS.WritableStream & { isTTY?: boolean };
  /** Ctrl-C: commands that wait or follow stop and exit 0. */
  signal: AbortSignal;
}

export interface ConnectOptions {
  kubeconfig: string;
  crdsDir: string;
  namespace: string | undefined;
  runtimeAddress: string | undefined;
  runtimeToken: string | undefined;
  out: CliContext['out'];
  signal: AbortSignal;
}

/** Loads the kubeconfig and the CRDs; a missing kubeconfig is "cannot connect" (exit 4), with what to do. */
export function connect(options: ConnectOptions): CliContext {
  if (!existsSync(options.kubeconfig)) {
    throw new CliError(
      ExitCode.Unavailable,
      `no kubeconfig at ${options.kubeconfig}: start the company with \`npm start\`, or pass --kubeconfig (or set TROUPE_KUBECONFIG)`,
    );
  }
  const { config, runtimeAddress, runtimeToken } = readKubeconfig(options.kubeconfig);
  const validator = CrdValidator.fromDirectory(options.crdsDir);
  const contextNamespace = config.getContextObject(config.getCurrentContext())?.namespace;
  return {
    client: new KubeClient({ config, fieldManager: 'troupe-cli', requestTimeoutMs: 15_000 }),
    catalog: new KindCatalog(validator.kinds()),
    validator,
    namespace: options.namespace ?? contextNamespace ?? 'default',
    namespaceExplicit: options.namespace !== undefined,
    runtimeAddress: options.runtimeAddress ?? runtimeAddress,
    runtimeToken: options.runtimeToken ?? runtimeToken,
    out: options.out,
    signal: options.signal,
  };
}

/** A RuntimeService client; exit 4 when no address is known. */
export function runtimeClient(context: CliContext): GrpcRuntimeClient {
  if (context.runtimeAddress === undefined) {
    throw new CliError(
      ExitCode.Unavailable,
      'no runtime address: the kubeconfig has no troupe.dev/runtime extension; pass --runtime-address HOST:PORT (or set TROUPE_RUNTIME_ADDRESS)',
    );
  }
  return new GrpcRuntimeClient({ address: context.runtimeAddress, token: context.runtimeToken });
}

/**
 * Watches `type` in `namespace` ('' for all) through an informer — which relists and reconnects
 * on its own, e.g. across a restart of `npm start` — calling `onChange` with every object that
 * changes until it returns true (resolves true), `timeoutMs` passes (resolves false) or the
 * context's signal aborts (resolves true). `onSynced` sees the first full list, and may end the
 * wait at once (for a wait on something that happened before the list).
 */
export async function watchUntil<T extends KubeObject>(
  context: CliContext,
  type: ResourceType<T>,
  namespace: string,
  onChange: (object: T, deleted: boolean) => boolean,
  timeoutMs: number | undefined,
  onSynced?: (objects: T[]) => boolean,
): Promise<boolean> {
  const informer = new Informer<T>({
    client: context.client,
    type,
    namespaces: namespace === '' ? [] : [namespace],
    resyncMs: 0,
    backoff: { initialMs: 250, maxMs: 2_000 },
  });
  let finish!: (done: boolean) => void;
  const finished = new Promise<boolean>((resolve) => (finish = resolve));
  const handle = (object: T, deleted: boolean) => {
    if (onChange(object, deleted)) finish(true);
  };
  informer.addHandler({
    onAdd: (object) => handle(object, false),
    onUpdate: (_previous, object) => handle(object, false),
    onDelete: (object) => handle(object, true),
  });
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => finish(false), timeoutMs);
  const aborted = () => finish(true);
  context.signal.addEventListener('abort', aborted);
  informer.start();
  if (onSynced !== undefined) void informer.synced().then(() => onSynced(informer.list()) && finish(true));
  try {
    return await finished;
  } finally {
    clearTimeout(timer);
    context.signal.removeEventListener('abort', aborted);
    await informer.stop();
  }
}

/** Parses `30s`, `10m`, `1h` or a number of seconds. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new CliError(ExitCode.Usage, `${flag} must be a duration such as 30s, 10m or 1h, got "${text}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}
