/**
 * The embedded API server, assembled: the resource store in `<dataDir>/resources.db` serving
 * the core kinds and the kinds of the CRDs in crds/, every troupe.dev write checked and
 * defaulted by the same CRD validator the CLI uses (so it refuses what the API server refuses,
 * with the same message), behind the resource server on loopback. `npm start` runs it and the
 * operator's reconcilers against it.
 */
import { join } from 'node:path';
import { silentLogger, type Logger } from '../kube/log.js';
import { CrdValidator } from '../schema/validator.js';
import { invalidStatus } from '../schema/field-error.js';
import type { KindInfo } from '../schema/crd.types.js';
import { StatusError } from './api-status.js';
import { ResourceServer } from './resource-server.js';
import { ResourceStore, type Admission } from './resource-store.js';
import { CORE_RESOURCES, type ServedResource } from './served-resources.js';

export interface EmbeddedApiServerOptions {
  /** The store lives in `<dataDir>/resources.db`. */
  dataDir: string;
  /** The CustomResourceDefinitions to serve (crds/ of the repository). */
  crdsDir: string;
  /** The bearer token clients must present. */
  token: string;
  /** 0: any free port. */
  port: number;
  host?: string;
  /** Changes kept for watches to resume from (the store's default when unset). */
  historySize?: number;
  log?: Logger;
}

/** A running embedded API server. */
export interface EmbeddedApiServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly token: string;
  readonly store: ResourceStore;
  readonly validator: CrdValidator;
  stop(): Promise<void>;
}

/** A served resource for each kind a CRD declares. */
export function crdResources(kinds: readonly KindInfo[]): ServedResource[] {
  return kinds.map((info) => ({
    group: info.group,
    version: info.version,
    kind: info.kind,
    plural: info.plural,
    namespaced: info.namespaced,
    generation: true,
    statusSubresource: info.subresources.status,
    ...(info.subresources.scale === undefined ? {} : { scale: info.subresources.scale }),
  }));
}

/** Admission by the CRD validator: custom resources are defaulted and checked; core kinds pass as they are. */
export function crdAdmission(validator: CrdValidator, served: readonly ServedResource[]): Admission {
  const custom = new Set(served.filter((resource) => resource.generation).map((resource) => `${resource.group}/${resource.kind}`));
  return {
    admit(resource, object, old) {
      if (!custom.has(`${resource.group}/${resource.kind}`)) return object;
      const result = validator.validate(object, old);
      if (result.errors.length > 0)
        throw new StatusError(invalidStatus({ group: resource.group, kind: resource.kind }, object.metadata.name, result.errors));
      return result.object as typeof object;
    },
  };
}

/**
 * @example
 * const api = await startEmbeddedApiServer({ dataDir: '.troupe/data', crdsDir: 'crds', token, port: 8081 });
 * writeKubeconfig('.troupe/data/kubeconfig', { server: api.url, token: api.token });
 */
export async function startEmbeddedApiServer(options: EmbeddedApiServerOptions): Promise<EmbeddedApiServer> {
  const validator = CrdValidator.fromDirectory(options.crdsDir);
  const custom = crdResources(validator.kinds());
  const resources = [...CORE_RESOURCES, ...custom];
  const store = ResourceStore.open({
    path: join(options.dataDir, 'resources.db'),
    resources,
    admission: crdAdmission(validator, custom),
    ...(options.historySize === undefined ? {} : { historySize: options.historySize }),
  });
  let server: ResourceServer;
  try {
    server = await ResourceServer.start({
      store,
      token: options.token,
      port: options.port,
      ...(options.host === undefined ? {} : { host: options.host }),
      log: options.log ?? silentLogger,
    });
  } catch (error) {
    store.close();
    throw error;
  }
  return {
    url: server.url,
    token: options.token,
    store,
    validator,
    async stop() {
      await server.stop();
      store.close();
    },
  };
}
