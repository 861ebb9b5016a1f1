/**
 * k6: projects submitted as a platform team submits them — a Project created through the
 * Kubernetes API, as `kubectl apply` does — and followed through the gateway until delivered.
 * Measures how long the API server takes to accept a Project, how long until the runtime
 * reports it (the operator reconciled it), and how long until it is Delivered. Every Project
 * it creates carries the label `troupe.dev/load-test=<run>` and is deleted at the end.
 *
 *   k6 run -e K8S_API_URL=http://127.0.0.1:8001 -e NAMESPACE=acme \
 *          -e BASE_URL=http://127.0.0.1:8080 -e TOKEN=<token> load-tests/k6/project-submission.js
 *
 * Env: K8S_API_URL (required: the API server, e.g. `kubectl proxy`'s http://127.0.0.1:8001),
 * K8S_TOKEN (a bearer token allowed to create and delete Projects; not needed through kubectl
 * proxy), K8S_INSECURE=1 (skip TLS verification of a test cluster), NAMESPACE (required: a
 * tenant namespace with AgentPools), BASE_URL (default http://127.0.0.1:8080) and TOKEN (a
 * gateway token that can read NAMESPACE), PROJECTS (default 20), VUS (default 5),
 * MAX_COST_USD (each project's budget, default 5), DELIVER_TIMEOUT_SECONDS (default 900).
 */
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';

const K8S_API_URL = (__ENV.K8S_API_URL || '').replace(/\/$/, '');
const K8S_TOKEN = __ENV.K8S_TOKEN || '';
const NAMESPACE = __ENV.NAMESPACE || '';
const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const TOKEN = __ENV.TOKEN || '';
const DELIVER_TIMEOUT_SECONDS = Number(__ENV.DELIVER_TIMEOUT_SECONDS || 900);
const POLL_SECONDS = 2;
const LABEL = 'troupe.dev/load-test';

const toRuntime = new Trend('project_time_to_runtime', true);
const toDelivered = new Trend('project_time_to_delivered', true);
const delivered = new Rate('projects_delivered');

export const options = {
  insecureSkipTLSVerify: __ENV.K8S_INSECURE === '1',
  scenarios: {
    submitters: {
      executor: 'shared-iterations',
      vus: Number(__ENV.VUS || 5),
      iterations: Number(__ENV.PROJECTS || 20),
      maxDuration: `${DELIVER_TIMEOUT_SECONDS + 600}s`,
    },
  },
  thresholds: {
    'http_req_duration{api:kubernetes}': ['p(95)<1000'],
    'http_req_failed{api:kubernetes}': ['rate<0.01'],
    project_time_to_runtime: ['p(95)<10000'],
    project_time_to_delivered: ['p(95)<600000'],
    projects_delivered: ['rate>0.99'],
    checks: ['rate>0.99'],
  },
};

function kube(extra) {
  const headers = { 'Content-Type': 'application/json' };
  if (K8S_TOKEN !== '') headers.Authorization = `Bearer ${K8S_TOKEN}`;
  return { headers: headers, tags: { api: 'kubernetes', name: extra } };
}

function gateway(name) {
  return {
    headers: { Authorization: `Bearer ${TOKEN}` },
    tags: { api: 'gateway', name: name },
    responseCallback: http.expectedStatuses(200, 404),
  };
}

export function setup() {
  if (K8S_API_URL === '') fail('set K8S_API_URL to the Kubernetes API server (e.g. kubectl proxy on http://127.0.0.1:8001)');
  if (NAMESPACE === '') fail('set NAMESPACE to a tenant namespace that has AgentPools');
  if (TOKEN === '') fail('set TOKEN to a gateway token that can read NAMESPACE');
  return { run: `k6-${Date.now().toString(36)}` };
}

export default function (data) {
  const name = `${data.run}-${__VU}-${__ITER}`;
  const project = {
    apiVersion: 'troupe.dev/v1alpha1',
    kind: 'Project',
    metadata: { name: name, namespace: NAMESPACE, labels: { [LABEL]: data.run } },
    spec: {
      client: NAMESPACE,
      brief: 'A landing page with a contact form and a newsletter sign-up, for the load test.',
      budget: { maxCostUSD: Number(__ENV.MAX_COST_USD || 5) },
    },
  };
  const submitted = Date.now();
  const created = http.post(
    `${K8S_API_URL}/apis/troupe.dev/v1alpha1/namespaces/${NAMESPACE}/projects`,
    JSON.stringify(project),
    kube('create project'),
  );
  if (!check(created, { 'project created (201)': (r) => r.status === 201 })) {
    delivered.add(false);
    return;
  }
  let phase = 'Unknown';
  let seen = false;
  for (let waited = 0; waited < DELIVER_TIMEOUT_SECONDS && phase !== 'Delivered' && phase !== 'Failed'; waited += POLL_SECONDS) {
    const detail = http.get(`${BASE_URL}/api/projects/${NAMESPACE}/${name}`, gateway('project detail'));
    if (detail.status === 200) {
      if (!seen) toRuntime.add(Date.now() - submitted);
      seen = true;
      phase = detail.json('card.phase');
    }
    if (phase !== 'Delivered' && phase !== 'Failed') sleep(POLL_SECONDS);
  }
  if (phase === 'Delivered') toDelivered.add(Date.now() - submitted);
  delivered.add(phase === 'Delivered');
  check(phase, { 'project delivered in time': (p) => p === 'Delivered' });
}

export function teardown(data) {
  const selector = encodeURIComponent(`${LABEL}=${data.run}`);
  const removed = http.del(
    `${K8S_API_URL}/apis/troupe.dev/v1alpha1/namespaces/${NAMESPACE}/projects?labelSelector=${selector}`,
    null,
    kube('delete projects'),
  );
  check(removed, { 'load-test projects deleted': (r) => r.status === 200 });
}
