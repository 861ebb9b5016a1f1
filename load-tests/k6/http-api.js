/**
 * k6: the gateway's HTTP API read the way the dashboard reads it — who am I, the project and
 * pool lists, one project in full, and one of its artefacts — by many users at once.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e TOKEN=<token> load-tests/k6/http-api.js
 *
 * Env: BASE_URL (default http://127.0.0.1:8080), TOKEN (required: a gateway token; `npm start`
 * prints an admin and a client token), NAMESPACE (default: the token's tenant, or every
 * namespace for an admin), VUS (default 20), DURATION (default 1m).
 */
import http from 'k6/http';
import { check, fail, group, sleep } from 'k6';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const TOKEN = __ENV.TOKEN || '';

export const options = {
  scenarios: {
    dashboard_readers: { executor: 'constant-vus', vus: Number(__ENV.VUS || 20), duration: __ENV.DURATION || '1m' },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(95)<200', 'p(99)<500'],
    'http_req_duration{name:project detail}': ['p(95)<300'],
    checks: ['rate>0.99'],
  },
};

function params(name) {
  return { headers: { Authorization: `Bearer ${TOKEN}` }, tags: { name: name } };
}

export function setup() {
  if (TOKEN === '') fail('set TOKEN to a gateway token (npm start prints an admin and a client token)');
  const me = http.get(`${BASE_URL}/api/me`, params('me'));
  if (me.status !== 200) fail(`GET /api/me answered ${me.status}: ${me.body}`);
  // Empty asks for the token's own scope: its tenant, or every namespace for an admin.
  return { namespace: __ENV.NAMESPACE || '' };
}

export default function (data) {
  const scope = encodeURIComponent(data.namespace);
  group('overview', function () {
    const projects = http.get(`${BASE_URL}/api/projects?namespace=${scope}`, params('projects'));
    check(projects, { 'projects: 200': (r) => r.status === 200 });
    const pools = http.get(`${BASE_URL}/api/pools?namespace=${scope}`, params('pools'));
    check(pools, { 'pools: 200': (r) => r.status === 200 });

    const cards = projects.status === 200 ? projects.json('projects') : [];
    if (cards.length === 0) return;
    const card = cards[Math.floor(Math.random() * cards.length)];
    const detail = http.get(`${BASE_URL}/api/projects/${card.namespace}/${card.name}`, params('project detail'));
    check(detail, { 'project detail: 200': (r) => r.status === 200 });

    const artifacts = detail.status === 200 ? detail.json('artifacts') : [];
    if (artifacts.length === 0) return;
    const artifact = artifacts[Math.floor(Math.random() * artifacts.length)];
    const download = http.get(
      `${BASE_URL}/api/projects/${card.namespace}/${card.name}/artifacts/${encodeURIComponent(artifact.name)}`,
      params('artifact'),
    );
    check(download, { 'artifact: 200': (r) => r.status === 200 });
  });
  sleep(1);
}
