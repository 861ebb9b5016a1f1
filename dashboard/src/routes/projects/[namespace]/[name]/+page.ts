import { error } from '@sveltejs/kit';
import { ApiError, api } from '$lib/api';
import type { PageLoad } from './$types';

export const load: PageLoad = async ({ params, fetch }) => {
  try {
    return { detail: await api.project(params.namespace, params.name, fetch) };
  } catch (caught) {
    if (caught instanceof ApiError && (caught.status === 404 || caught.status === 403))
      error(caught.status, { message: caught.message, code: caught.code });
    throw caught;
  }
};
