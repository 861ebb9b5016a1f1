import { existsSync, mkdirSync, rmSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { step } from './log.js';

/**
 * Returns the cache folder for `key` (a name with its version, such as `kafka-4.1.1`),
 * building it once with `build` when it is missing. A build writes into a scratch folder
 * that is renamed into place only when complete, so an interrupted build is never reused.
 */
export async function cachedArtifact(cacheDir: string, key: string, label: string, build: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(cacheDir, key);
  if (existsSync(join(dir, '.complete'))) return dir;
  const scratch = `${dir}.building-${process.pid}`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  try {
    await step(`${label} (once per machine, cached in ${dir})`, () => build(scratch));
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    throw error;
  }
  writeFileSync(join(scratch, '.complete'), `${new Date().toISOString()}\n`);
  if (existsSync(join(dir, '.complete'))) {
    // Another run built the same version meanwhile; theirs is as good as ours.
    rmSync(scratch, { recursive: true, force: true });
  } else {
    rmSync(dir, { recursive: true, force: true });
    renameSync(scratch, dir);
  }
  return dir;
}
