import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [sveltekit()],
  // The stream worker is an ES module (it imports comlink).
  worker: { format: 'es' },
  build: { target: 'es2022' },
});
