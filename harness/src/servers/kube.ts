import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api, KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { cachedArtifact } from '../cache.js';
import { HarnessError, HarnessErrorCode } from '../errors.js';
import { go, wrapperModule } from '../go.js';
import { step } from '../log.js';
import { freePort } from '../ports.js';
import { run, startServer, stopServer, waitUntilReady } from '../process.js';
import type { ServerContext, Started } from './types.js';

export const KUBERNETES_VERSION = '1.34.4';
export const ETCD_VERSION = '3.6.16';

export interface KubeEndpoint {
  /** https://127.0.0.1:PORT of the API server. */
  server: string;
  /** An admin kubeconfig written for this run (token auth, system:masters). */
  kubeconfig: string;
  etcd: string;
  /** kubectl of the API server's version, built by the harness. */
  kubectl: string;
}

/**
 * etcd and kube-apiserver, started the way controller-runtime's envtest does, with the CRDs
 * from crds/ installed. There is no controller-manager or kubelet: objects are stored and
 * validated, but Deployments get no pods.
 */
export async function startKube(context: ServerContext): Promise<Started<KubeEndpoint>> {
  const [etcdBinary, apiserverBinary, kubectl] = await Promise.all([
    installEtcd(context.cacheDir),
    installKubeApiserver(context.cacheDir),
    installKubectl(context.cacheDir),
  ]);
  const dir = join(context.runDir, 'kube');
  mkdirSync(join(dir, 'certs'), { recursive: true });

  // A failure after etcd started stops what did start, or it would outlive the failed run.
  const pids: number[] = [];
  try {
    const [clientPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const etcd = startServer(
      etcdBinary,
      [
        '--name=troupe',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=troupe=http://127.0.0.1:${peerPort}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      { logFile: join(dir, 'etcd.log') },
    );
    pids.push(etcd.pid);
    await waitUntilReady('etcd', etcd, async () => (await fetch(`${etcdUrl}/health`)).ok, 30_000);

    const token = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`);
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));

    const apiserver = startServer(
      apiserverBinary,
      [
        `--etcd-servers=${etcdUrl}`,
        `--cert-dir=${join(dir, 'certs')}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${securePort}`,
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--allow-privileged=true',
        // No controller-manager runs, so nothing would ever mint the tokens this plugin waits for.
        '--disable-admission-plugins=ServiceAccount',
        '--v=0',
      ],
      { logFile: join(dir, 'kube-apiserver.log') },
    );
    pids.push(apiserver.pid);
    const server = `https://127.0.0.1:${securePort}`;
    await waitUntilReady('kube-apiserver', apiserver, () => readyz(server, token), 90_000);

    const kubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(kubeconfig, adminKubeconfig(server, token));
    const endpoint = { server, kubeconfig, etcd: etcdUrl, kubectl };
    await installCrds(endpoint, join(context.repoRoot, 'crds'));
    return { endpoint, pids };
  } catch (error) {
    await Promise.all(pids.map((pid) => stopServer(pid)));
    throw error;
  }
}

/**
 * Applies every CustomResourceDefinition in `crdDir` (its top-level *.yaml files) with
 * `kubectl apply --server-side`, as a platform team would, and waits until the API server
 * reports each one Established. (client-node's typed serializer would drop the schemas'
 * `enum`, `default` and `x-kubernetes-*` keys, CEL rules included.)
 */
export async function installCrds(endpoint: KubeEndpoint, crdDir: string): Promise<void> {
  const files = readdirSync(crdDir).filter((name) => name.endsWith('.yaml'));
  const names = files.flatMap((file) =>
    parseAllDocuments(readFileSync(join(crdDir, file), 'utf8'))
      .map((document) => document.toJS() as V1CustomResourceDefinition | null)
      .filter((crd): crd is V1CustomResourceDefinition => crd?.kind === 'CustomResourceDefinition')
      .map((crd) => crd.metadata?.name ?? ''),
  );
  await run(endpoint.kubectl, [
    '--kubeconfig',
    endpoint.kubeconfig,
    'apply',
    '--server-side',
    '--force-conflicts',
    ...files.flatMap((file) => ['-f', join(crdDir, file)]),
  ]);
  const config = new KubeConfig();
  config.loadFromFile(endpoint.kubeconfig);
  const extensions = config.makeApiClient(ApiextensionsV1Api);
  const deadline = Date.now() + 30_000;
  for (const name of names) {
    for (;;) {
      const current = await extensions.readCustomResourceDefinition({ name });
      if (current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) {
        throw new HarnessError(HarnessErrorCode.StartFailed, `CustomResourceDefinition ${name} was not Established within 30s`);
      }
      await sleep(100);
    }
  }
}

function installEtcd(cacheDir: string): Promise<string> {
  return cachedArtifact(cacheDir, `etcd-${ETCD_VERSION}`, `building etcd ${ETCD_VERSION} from its Go module`, async (dir) => {
    await wrapperModule(dir, 'troupe.local/etcd', ['go.etcd.io/etcd/server/v3/etcdmain'], {
      'go.etcd.io/etcd/server/v3': `v${ETCD_VERSION}`,
    });
    await go(['build', '-trimpath', '-ldflags=-s -w', '-o', join(dir, 'bin', 'etcd'), 'go.etcd.io/etcd/server/v3'], dir);
  }).then((dir) => join(dir, 'bin', 'etcd'));
}

function installKubeApiserver(cacheDir: string): Promise<string> {
  return buildKubernetesCommand(cacheDir, 'kube-apiserver', ['k8s.io/kubernetes/cmd/kube-apiserver/app'], '8–15 min on 2 cores');
}

/** kubectl of the API server's own version, so that tests run it as a user would, with no version skew. */
function installKubectl(cacheDir: string): Promise<string> {
  return buildKubernetesCommand(
    cacheDir,
    'kubectl',
    // The main package's own imports, and a leaf package of k8s.io/kubernetes: without one,
    // `go mod tidy` drops the module, as kubectl's code lives in the staging modules.
    ['k8s.io/component-base/cli', 'k8s.io/kubectl/pkg/cmd', 'k8s.io/client-go/plugin/pkg/client/auth', 'k8s.io/kubernetes/pkg/util/env'],
  );
}

/**
 * Builds `k8s.io/kubernetes/cmd/<command>` at KUBERNETES_VERSION, cached per machine. `imports`
 * are packages the command's main builds on: a wrapper module cannot import a main package.
 */
function buildKubernetesCommand(cacheDir: string, command: string, imports: readonly string[], duration?: string): Promise<string> {
  return cachedArtifact(
    cacheDir,
    `${command}-${KUBERNETES_VERSION}`,
    `building ${command} ${KUBERNETES_VERSION} from its Go module${duration === undefined ? '' : ` (${duration})`}`,
    async (dir) => {
      const module = `k8s.io/kubernetes@v${KUBERNETES_VERSION}`;
      const download = JSON.parse(await go(['mod', 'download', '-json', module], dir)) as { GoMod: string };
      // k8s.io/kubernetes points its staging modules at ./staging; a wrapper must pin the
      // published v0.x.y of each instead.
      const staging = [...readFileSync(download.GoMod, 'utf8').matchAll(/^\s*(k8s\.io\/[\w.-]+) => \.\/staging\//gm)].map((m) => m[1]!);
      const [major, minor, patch] = KUBERNETES_VERSION.split('.');
      const replaces = Object.fromEntries(staging.map((path) => [path, `v0.${minor}.${patch}`]));
      await wrapperModule(dir, 'troupe.local/kube', imports, { 'k8s.io/kubernetes': `v${KUBERNETES_VERSION}` }, replaces);
      const versionFlags = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((pkg) => [
        `-X '${pkg}.gitVersion=v${KUBERNETES_VERSION}'`,
        `-X '${pkg}.gitMajor=${major}'`,
        `-X '${pkg}.gitMinor=${minor}'`,
        `-X '${pkg}.gitTreeState=clean'`,
      ]);
      await step(`compiling ${command}`, () =>
        go(
          [
            'build',
            '-trimpath',
            `-ldflags=-s -w ${versionFlags.join(' ')}`,
            '-o',
            join(dir, 'bin', command),
            `k8s.io/kubernetes/cmd/${command}`,
          ],
          dir,
        ),
      );
    },
  ).then((dir) => join(dir, 'bin', command));
}

function readyz(server: string, token: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server}/readyz`,
      { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.once('error', reject);
    req.once('timeout', () => req.destroy(new Error('readyz timed out')));
    req.end();
  });
}

function adminKubeconfig(server: string, token: string): string {
  // The API server signs its own serving certificate for this run; trust is by token on loopback.
  return `apiVersion: v1
kind: Config
clusters:
  - name: troupe-test
    cluster:
      server: ${server}
      insecure-skip-tls-verify: true
users:
  - name: admin
    user:
      token: ${token}
contexts:
  - name: troupe-test
    context:
      cluster: troupe-test
      user: admin
current-context: troupe-test
`;
}
