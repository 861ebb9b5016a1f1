/**
 * The kubeconfig `npm start` writes for the troupe CLI (and anything else that speaks
 * kubeconfig): the embedded resource server's URL, its admin token, and — in a cluster
 * extension, since a kubeconfig has no field for them — the runtime's gRPC address and the
 * bearer token its calls carry. The CLI reads the same file, or a real cluster's kubeconfig,
 * through `readKubeconfig`.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';

/** The cluster extension that carries the runtime's gRPC address and token. */
export const RUNTIME_EXTENSION = 'troupe.dev/runtime';

const NAME = 'troupe-embedded';

/** What the kubeconfig points at. */
export interface Endpoints {
  /** The resource server, e.g. `http://127.0.0.1:8081`. */
  server: string;
  /** Its bearer token. */
  token: string;
  /** host:port of the runtime's RuntimeService. */
  runtimeAddress?: string;
  /** The bearer token of RuntimeService calls. */
  runtimeToken?: string;
  /** The context's default namespace. */
  namespace?: string;
}

/** A loaded kubeconfig and the runtime address and token its current cluster carries, if any. */
export interface LoadedKubeconfig {
  config: KubeConfig;
  runtimeAddress?: string;
  runtimeToken?: string;
}

/**
 * Writes the kubeconfig at `path` (readable by its owner only: it holds the admin token), whole
 * or not at all, so that a CLI reading it meanwhile sees the old file or the new one.
 */
export function writeKubeconfig(path: string, endpoints: Endpoints): void {
  const document = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: NAME,
        cluster: {
          server: endpoints.server,
          // client-node refuses a plain-HTTP server unless told TLS is not checked (there is none).
          ...(endpoints.server.startsWith('http:') ? { 'insecure-skip-tls-verify': true } : {}),
          ...(endpoints.runtimeAddress === undefined
            ? {}
            : {
                extensions: [
                  {
                    name: RUNTIME_EXTENSION,
                    extension: {
                      grpcAddress: endpoints.runtimeAddress,
                      ...(endpoints.runtimeToken === undefined ? {} : { token: endpoints.runtimeToken }),
                    },
                  },
                ],
              }),
        },
      },
    ],
    users: [{ name: `${NAME}-admin`, user: { token: endpoints.token } }],
    contexts: [
      {
        name: NAME,
        context: { cluster: NAME, user: `${NAME}-admin`, ...(endpoints.namespace === undefined ? {} : { namespace: endpoints.namespace }) },
      },
    ],
    'current-context': NAME,
  };
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, stringify(document), { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

/** Loads a kubeconfig file and the runtime address and token of its current cluster's troupe extension. */
export function readKubeconfig(path: string): LoadedKubeconfig {
  const text = readFileSync(path, 'utf8');
  const config = new KubeConfig();
  config.loadFromString(text);
  const document = parse(text) as {
    clusters?: { name?: string; cluster?: { extensions?: { name?: string; extension?: { grpcAddress?: unknown; token?: unknown } }[] } }[];
  } | null;
  const cluster = config.getCurrentCluster()?.name;
  const extension = document?.clusters
    ?.find((entry) => entry.name === cluster)
    ?.cluster?.extensions?.find((entry) => entry.name === RUNTIME_EXTENSION)?.extension;
  const address = extension?.grpcAddress;
  const token = extension?.token;
  return {
    config,
    ...(typeof address === 'string' && address !== '' ? { runtimeAddress: address } : {}),
    ...(typeof token === 'string' && token !== '' ? { runtimeToken: token } : {}),
  };
}
