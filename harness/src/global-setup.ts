/**
 * vitest's global setup: starts the real servers once per test run, or reuses the ones kept
 * by `npm run infra:up`, and stops what it started when the run ends.
 */
import { startInfra, stopInfra } from './infra.js';
import { REPO_ROOT, defaultCacheDir } from './paths.js';

export default async function setup(): Promise<() => Promise<void>> {
  const { reused } = await startInfra({ repoRoot: REPO_ROOT, cacheDir: defaultCacheDir(process.env) }, 'test-run');
  return async () => {
    if (!reused) await stopInfra(REPO_ROOT);
  };
}
