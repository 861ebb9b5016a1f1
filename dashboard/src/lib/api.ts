/**
 * The gateway's HTTP API, typed with the shared protocol. Every call sends the session's token;
 * refusals throw ApiError with the gateway's code and message.
 */
import type {
  Accepted,
  ApiError as ApiErrorBody,
  ApproveRequest,
  Identity,
  PoolsResponse,
  ProjectDetail,
  ProjectsResponse,
  ScaleRequest,
} from '$protocol';
import { token } from './session';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Fetch = typeof fetch;

async function call<T>(fetcher: Fetch, path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const bearer = token();
  if (bearer !== null) headers.set('authorization', `Bearer ${bearer}`);
  const response = await fetcher(path, { ...init, headers });
  if (!response.ok) {
    const body = (await response.json().catch(() => undefined)) as ApiErrorBody | undefined;
    throw new ApiError(response.status, body?.error.code ?? 'UNKNOWN', body?.error.message ?? `${response.status} ${response.statusText}`);
  }
  return (await response.json()) as T;
}

function post<T>(path: string, body: unknown): Promise<T> {
  return call<T>(fetch, path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': crypto.randomUUID() },
    body: JSON.stringify(body),
  });
}

export const api = {
  me: (fetcher: Fetch = fetch) => call<Identity>(fetcher, '/api/me'),
  projects: (fetcher: Fetch = fetch) => call<ProjectsResponse>(fetcher, '/api/projects'),
  project: (namespace: string, name: string, fetcher: Fetch = fetch) =>
    call<ProjectDetail>(fetcher, `/api/projects/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`),
  pools: (fetcher: Fetch = fetch) => call<PoolsResponse>(fetcher, '/api/pools'),
  approve: (namespace: string, name: string, phase: string) =>
    post<Accepted>(`/api/projects/${namespace}/${name}/approve`, { phase } satisfies ApproveRequest),
  scale: (namespace: string, pool: string, replicas: number) =>
    post<Accepted>(`/api/pools/${namespace}/${pool}/scale`, { replicas } satisfies ScaleRequest),
  /** An artefact's content (the href the gateway gave it). */
  async artifact(href: string): Promise<Blob> {
    const bearer = token();
    const response = await fetch(href, { headers: bearer === null ? {} : { authorization: `Bearer ${bearer}` } });
    if (!response.ok) throw new ApiError(response.status, 'DOWNLOAD_FAILED', `could not fetch the artefact (${response.status})`);
    return response.blob();
  },
};

/** Checks a token before it is stored: the gateway's answer, without the session. */
export async function identify(candidate: string): Promise<Identity> {
  const response = await fetch('/api/me', { headers: { authorization: `Bearer ${candidate}` } });
  const body = (await response.json()) as Identity | ApiErrorBody;
  if ('error' in body) throw new ApiError(response.status, body.error.code, body.error.message);
  return body;
}
