/**
 * Small durable-file helpers for the embedded log: replacing a file atomically, making a new
 * directory entry durable, and a lock that keeps a second process off a data directory.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';

/**
 * Replaces `path` with `text` so a crash leaves either the old or the new content, never a mix:
 * write a temporary file, sync it, rename it over the target, sync the directory. With
 * `durable: false` the syncs are skipped; the rename still keeps the content whole.
 */
export async function replaceFile(path: string, text: string, durable: boolean): Promise<void> {
  const temporary = `${path}.tmp`;
  const handle = await open(temporary, 'w');
  try {
    await handle.writeFile(text, 'utf8');
    if (durable) await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
  if (durable) await syncDirectory(dirname(path));
}

/** Makes the entries of a directory (files created, renamed or removed in it) durable. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Data directories this process holds; the pid in a LOCK file cannot tell us apart from ourselves. */
const heldHere = new Set<string>();

/** A held data-directory lock. */
export interface DirectoryLock {
  release(): Promise<void>;
}

/**
 * Takes `<dir>/LOCK` for this process. The embedded log keeps its index in memory, so two
 * writers on one directory would overwrite each other's records; this refuses the second one.
 * A LOCK left by a dead process (a crash, a SIGKILL) is taken over: the pid in it is checked.
 */
export async function lockDirectory(dir: string): Promise<DirectoryLock> {
  const absolute = resolve(dir);
  if (heldHere.has(absolute)) {
    throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `option \`dir\`: ${absolute} is already open in this process`);
  }
  const path = join(absolute, 'LOCK');
  heldHere.add(absolute);
  try {
    await createLockFile(path, absolute);
  } catch (error) {
    heldHere.delete(absolute);
    throw error;
  }
  return {
    async release() {
      await unlink(path);
      heldHere.delete(absolute);
    },
  };
}

async function createLockFile(path: string, dir: string): Promise<void> {
  // Two attempts: the second follows the removal of a dead process's lock.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(`${process.pid}\n`, 'utf8');
      } finally {
        await handle.close();
      }
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt(await readFile(path, 'utf8').catch(ignoreMissing), 10);
    if (Number.isInteger(holder) && holder !== process.pid && processAlive(holder)) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `option \`dir\`: ${dir} is in use by process ${holder} (remove ${path} if that process is not a Troupe runtime)`,
      );
    }
    await unlink(path).catch(ignoreMissing);
  }
  throw new RuntimeError(
    RuntimeErrorCode.InvalidOptions,
    `option \`dir\`: another process took ${path} while a stale lock was being replaced`,
  );
}

// The holder may release its lock between our look-ups; that is not a failure.
function ignoreMissing(error: NodeJS.ErrnoException): string {
  if (error.code === 'ENOENT') return '';
  throw error;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else, which still makes it alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
