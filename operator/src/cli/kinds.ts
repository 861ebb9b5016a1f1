/**
 * The kinds the CLI knows, by every name a user may type (`projects`, `proj`, `pools`, `ap`, …)
 * and by the apiVersion and kind a manifest declares: the troupe.dev kinds as the CRDs describe
 * them (plural, short names, printer columns), and the core kinds `apply` also takes
 * (Namespace, Secret, ConfigMap).
 */
import { resourceType, type ResourceType } from '../kube/client.js';
import type { KubeObject } from '../kube/types.js';
import type { KindInfo } from '../schema/crd.types.js';
import { usage } from './exit-codes.js';

/** A kind as the CLI handles it. */
export interface CliKind {
  type: ResourceType<KubeObject>;
  namespaced: boolean;
  /** The CRD's description of the kind; unset for core kinds. */
  info?: KindInfo;
}

/** Friendlier names than the CRDs' own, for the kinds a user of the company thinks in. */
const ALIASES: Readonly<Record<string, string>> = {
  pool: 'agentpools',
  pools: 'agentpools',
  provider: 'modelproviders',
  providers: 'modelproviders',
};

const CORE: readonly CliKind[] = [
  { type: resourceType('', 'v1', 'Namespace', 'namespaces'), namespaced: false },
  { type: resourceType('', 'v1', 'Secret', 'secrets'), namespaced: true },
  { type: resourceType('', 'v1', 'ConfigMap', 'configmaps'), namespaced: true },
];

export class KindCatalog {
  private readonly byTypedName = new Map<string, CliKind>();
  private readonly byApiKind = new Map<string, CliKind>();

  constructor(kinds: readonly KindInfo[]) {
    for (const info of kinds) {
      const kind: CliKind = { type: resourceType(info.group, info.version, info.kind, info.plural), namespaced: info.namespaced, info };
      for (const name of [info.plural, info.singular, info.kind.toLowerCase(), ...info.shortNames]) this.byTypedName.set(name, kind);
      this.byApiKind.set(`${info.apiVersion}/${info.kind}`, kind);
    }
    for (const [alias, plural] of Object.entries(ALIASES)) {
      const kind = this.byTypedName.get(plural);
      if (kind !== undefined) this.byTypedName.set(alias, kind);
    }
    for (const kind of CORE) this.byApiKind.set(`${kind.type.version}/${kind.type.kind}`, kind);
  }

  /** The troupe.dev kind a user named on the command line; a usage error names the choices. */
  named(name: string): CliKind {
    const kind = this.byTypedName.get(name.toLowerCase());
    if (kind === undefined) throw usage(`unknown kind "${name}": use projects, pools, providers or workflows`);
    return kind;
  }

  /** The kind a manifest declares, or undefined when the CLI does not apply it. */
  ofManifest(apiVersion: string, kind: string): CliKind | undefined {
    return this.byApiKind.get(`${apiVersion}/${kind}`);
  }
}

/** `project.troupe.dev/storefront`, as kubectl names an object in what it prints. */
export function objectName(kind: CliKind, name: string): string {
  const singular = kind.info?.singular ?? kind.type.kind.toLowerCase();
  return `${singular}${kind.type.group === '' ? '' : `.${kind.type.group}`}/${name}`;
}
