// The app is a single page served by the gateway: no server rendering, no prerendered pages.
// The layout checks the session once per load of the app: no token, or one the gateway
// refuses, goes to the sign-in page.
import { redirect } from '@sveltejs/kit';
import { ApiError, api } from '$lib/api';
import { signOut, token } from '$lib/session';
import type { LayoutLoad } from './$types';

export const ssr = false;
export const prerender = false;

export const load: LayoutLoad = async ({ url, fetch, untrack }) => {
  const path = untrack(() => url.pathname);
  if (path === '/login') return { identity: null };
  const next = `/login?next=${encodeURIComponent(path)}`;
  if (token() === null) redirect(307, next);
  try {
    return { identity: await api.me(fetch) };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut();
      redirect(307, `${next}&reason=expired`);
    }
    throw error;
  }
};
