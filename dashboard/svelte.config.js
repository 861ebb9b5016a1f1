// SvelteKit config: a static single-page build (the gateway serves `build/` and answers every
// client route with index.html), and the gateway's wire types shared as `$protocol`.
import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
  preprocess: vitePreprocess(),
  kit: {
    adapter: adapter({ pages: 'build', assets: 'build', fallback: 'index.html', strict: true }),
    alias: {
      // Types only: the dashboard never imports runtime code, just the contract both sides speak.
      $protocol: '../runtime/src/gateway/protocol.ts',
    },
  },
};

export default config;
