import { join } from 'node:path';
import { cachedArtifact } from '../cache.js';
import { go } from '../go.js';
import { KUBERNETES_VERSION } from './kube.js';

export const HELM_VERSION = '3.22.0';

export interface HelmEndpoint {
  binary: string;
}

/**
 * helm, built from its Go module. The Kubernetes version it assumes for `helm template` and
 * `helm lint` is set to the API server's, not the 1.20 a bare build would assume.
 */
export async function installHelm(cacheDir: string): Promise<HelmEndpoint> {
  const dir = await cachedArtifact(
    cacheDir,
    `helm-${HELM_VERSION}`,
    `building helm ${HELM_VERSION} from its Go module`,
    async (scratch) => {
      const [major, minor] = KUBERNETES_VERSION.split('.');
      const flags = [
        `-X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}`,
        `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${major}`,
        `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor}`,
        `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${major}`,
        `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}`,
      ];
      await go(['install', '-trimpath', `-ldflags=-s -w ${flags.join(' ')}`, `helm.sh/helm/v3/cmd/helm@v${HELM_VERSION}`], scratch, {
        GOBIN: join(scratch, 'bin'),
      });
    },
  );
  return { binary: join(dir, 'bin', 'helm') };
}
