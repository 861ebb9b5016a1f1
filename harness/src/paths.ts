import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file's place in harness/src/. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The machine-wide cache of built servers: $TROUPE_CACHE_DIR, else ~/.cache/troupe. */
export function defaultCacheDir(env: NodeJS.ProcessEnv): string {
  return env.TROUPE_CACHE_DIR ?? join(homedir(), '.cache', 'troupe');
}
