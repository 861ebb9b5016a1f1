/**
 * The k6 scripts stay usable for users who run k6 (k6 itself is not installed here): each one
 * parses as an ES module, imports only k6's own modules, declares thresholds, and calls only
 * endpoints that exist — the gateway's routes as runtime/src/gateway mounts them, and the
 * Project resource's path on the Kubernetes API as crds/project.yaml defines it.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K6 = `${ROOT}load-tests/k6/`;
const SCRIPTS = ['http-api.js', 'ws-stream.js', 'project-submission.js'];

type Method = 'get' | 'post' | 'del' | 'ws';

interface Call {
  method: Method;
  base: 'BASE_URL' | 'WS_URL' | 'K8S_API_URL';
  /** The path with each `${…}` replaced by one segment, without the query. */
  path: string;
}

/** What the gateway serves: its HTTP API routes, its health check and its stream. */
function gatewayRoutes(): { method: Method; pattern: string }[] {
  const api = readFileSync(`${ROOT}runtime/src/gateway/http-api.ts`, 'utf8');
  const gateway = readFileSync(`${ROOT}runtime/src/gateway/gateway.ts`, 'utf8');
  return [
    ...[...api.matchAll(/route\('(get|post)', '([^']+)'/g)].map(([, method, pattern]) => ({ method: method as Method, pattern: pattern! })),
    ...[...api.matchAll(/app\.get\('([^']+)'/g)].map(([, pattern]) => ({ method: 'get' as const, pattern: pattern! })),
    ...[...gateway.matchAll(/path: '([^']+)'/g)].map(([, pattern]) => ({ method: 'ws' as const, pattern: pattern! })),
  ];
}

/** The Project collection on the Kubernetes API: create, and delete by label. */
function kubernetesRoutes(): { method: Method; pattern: string }[] {
  const crd = readFileSync(`${ROOT}crds/project.yaml`, 'utf8');
  const [group, plural, version] = [/^ {2}group: (\S+)$/m, /^ {4}plural: (\S+)$/m, /^ {4}- name: (\S+)$/m].map(
    (field) => field.exec(crd)?.[1],
  );
  const collection = `/apis/${group}/${version}/namespaces/:namespace/${plural}`;
  return [
    { method: 'post', pattern: collection },
    { method: 'del', pattern: collection },
  ];
}

/** A uWS-style route pattern (`:param` is one segment, a trailing `*` the rest) as a regular expression. */
function routeRegExp(pattern: string): RegExp {
  const parts = pattern
    .split('/')
    .map((part) => (part.startsWith(':') ? '[^/]+' : part === '*' ? '.+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${parts.join('/')}$`);
}

function served(call: Call): boolean {
  const routes = call.base === 'K8S_API_URL' ? kubernetesRoutes() : gatewayRoutes();
  return routes.some((route) => route.method === call.method && routeRegExp(route.pattern).test(call.path));
}

/** Every request a script makes, from its source: `http.<method>(`${BASE}/path`` or `ws.connect(`${WS_URL}/path``. */
function callsOf(source: string): Call[] {
  const calls = [...source.matchAll(/\b(http\.(get|post|del)|ws\.connect)\(\s*`\$\{(BASE_URL|WS_URL|K8S_API_URL)\}([^`]*)`/g)];
  return calls.map(([, fn, method, base, path]) => ({
    method: fn === 'ws.connect' ? 'ws' : (method as Method),
    base: base as Call['base'],
    path: path!.replace(/\$\{[^}]+\}/g, 'x').split('?')[0]!,
  }));
}

describe('the k6 scripts', () => {
  it.each(SCRIPTS)('%s parses as an ES module, imports only k6 and declares thresholds', async (script) => {
    const source = readFileSync(`${K6}${script}`, 'utf8');
    await expect(promisify(execFile)(process.execPath, ['--check', `${K6}${script}`])).resolves.toBeDefined();
    const imports = [...source.matchAll(/^import .* from '([^']+)';$/gm)].map(([, module]) => module);
    expect(imports.length).toBeGreaterThan(0);
    for (const module of imports) expect(module, `${script} imports ${module}`).toMatch(/^k6(\/|$)/);
    expect(source).toMatch(/export const options = \{[\s\S]*thresholds: \{/);
  });

  it.each(SCRIPTS)('%s calls only endpoints that are served', (script) => {
    const source = readFileSync(`${K6}${script}`, 'utf8');
    const calls = callsOf(source);
    expect(calls.length).toBeGreaterThan(0);
    // No request escapes the check: every http/ws call in the script is one of those read above.
    expect(source.match(/\b(http\.(get|post|put|patch|del|request|batch|asyncRequest)|ws\.connect)\(/g)?.length).toBe(calls.length);
    for (const call of calls) expect(served(call), `${script}: ${call.method} ${call.base}${call.path}`).toBe(true);
  });

  it('refuses a path the gateway does not serve', () => {
    expect(served({ method: 'get', base: 'BASE_URL', path: '/api/projects/acme/shop' })).toBe(true);
    expect(served({ method: 'get', base: 'BASE_URL', path: '/api/projects/acme/shop/tasks' })).toBe(false);
    expect(served({ method: 'post', base: 'BASE_URL', path: '/api/projects' })).toBe(false);
    expect(served({ method: 'post', base: 'K8S_API_URL', path: '/apis/troupe.dev/v1alpha1/namespaces/acme/projects' })).toBe(true);
    expect(served({ method: 'post', base: 'K8S_API_URL', path: '/apis/troupe.dev/v1/namespaces/acme/projects' })).toBe(false);
  });
});
