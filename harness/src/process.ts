import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { delimiter, join } from 'node:path';
import { HarnessError, HarnessErrorCode } from './errors.js';

/** Finds an executable on PATH, as a shell would. */
export function which(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, tool);
    if (dir !== '' && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The apt-get runs of this process, one after another: apt takes a lock that a second run fails on. */
let aptRuns: Promise<unknown> = Promise.resolve();
let aptListsUpdated = false;

/**
 * Returns the path of `binary`, installing Debian's `pkg` first when it is missing.
 * Installing needs root (as on the project's machines and CI); elsewhere the error says
 * which package to install. Servers start concurrently, so installs queue behind each other,
 * and an apt run of another process is waited for rather than failed on.
 */
export async function ensureDebianPackage(binary: string, pkg: string): Promise<string> {
  const found = which(binary);
  if (found !== undefined) return found;
  if (process.getuid?.() !== 0 || which('apt-get') === undefined) {
    throw new HarnessError(
      HarnessErrorCode.MissingTool,
      `${binary} is not installed: install Debian's ${pkg} package (apt-get install ${pkg})`,
    );
  }
  const install = aptRuns.then(() => aptInstall(binary, pkg));
  aptRuns = install.catch(() => undefined);
  return install;
}

async function aptInstall(binary: string, pkg: string): Promise<string> {
  // The install queued before this one may have brought it.
  const found = which(binary);
  if (found !== undefined) return found;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const waitForLock = ['-o', 'DPkg::Lock::Timeout=600'];
  if (!aptListsUpdated) {
    await run('apt-get', [...waitForLock, 'update', '-qq'], { env });
    aptListsUpdated = true;
  }
  await run('apt-get', [...waitForLock, 'install', '-y', '-qq', '--no-install-recommends', pkg], { env });
  const installed = which(binary);
  if (installed === undefined) {
    throw new HarnessError(HarnessErrorCode.MissingTool, `apt-get installed ${pkg} but ${binary} is still not on PATH`);
  }
  return installed;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a build or setup command to completion; on failure the error carries its output's tail. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk));
    child.once('error', (error) =>
      reject(new HarnessError(HarnessErrorCode.MissingTool, `cannot run ${command}: ${error.message}`, { cause: error })),
    );
    child.once('close', (code, signal) => {
      const text = Buffer.concat(output).toString('utf8');
      if (code === 0) resolve(text);
      else
        reject(
          new HarnessError(HarnessErrorCode.BuildFailed, `${command} ${args.join(' ')} exited with ${signal ?? code}:\n${tail(text, 40)}`),
        );
    });
  });
}

/** A server process started by the harness, in its own process group. */
export interface ServerProcess {
  pid: number;
  logFile: string;
}

/**
 * Starts a long-lived server detached from the caller, with its output in `logFile`, so it
 * outlives `npm run infra:up` and can be stopped as a whole process group later.
 */
export function startServer(command: string, args: readonly string[], options: RunOptions & { logFile: string }): ServerProcess {
  const fd = openSync(options.logFile, 'a');
  try {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    if (child.pid === undefined) {
      throw new HarnessError(HarnessErrorCode.MissingTool, `cannot start ${command}: no such executable`);
    }
    child.unref();
    return { pid: child.pid, logFile: options.logFile };
  } finally {
    closeSync(fd);
  }
}

/**
 * Polls `ready` until it answers true. Fails early when the server process died, and
 * quotes the tail of its log either way; a server that was not ready in time is stopped.
 */
export async function waitUntilReady(what: string, server: ServerProcess, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!isAlive(server.pid)) {
      throw new HarnessError(
        HarnessErrorCode.StartFailed,
        `${what} exited while starting; the end of ${server.logFile}:\n${tail(readLog(server.logFile), 30)}`,
      );
    }
    try {
      if (await ready()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(250);
  }
  await stopServer(server.pid);
  const reason = lastError instanceof Error ? ` (last check: ${lastError.message})` : '';
  throw new HarnessError(
    HarnessErrorCode.StartFailed,
    `${what} was not ready within ${timeoutMs / 1000}s${reason}; the end of ${server.logFile}:\n${tail(readLog(server.logFile), 30)}`,
  );
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers signal 0; it is gone for every purpose of ours.
  const stat = readProcFile(pid, 'stat');
  return stat === undefined || !/^\d+ \(.*\) Z/.test(stat);
}

/** Stops a server's whole process group: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopServer(pid: number, graceMs = 10_000): Promise<void> {
  if (!signalGroup(pid, 'SIGTERM')) return;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(100);
  }
  signalGroup(pid, 'SIGKILL');
  while (isAlive(pid)) await sleep(50);
}

/** Resident memory of a server's whole process group in bytes (Chromium runs several), from /proc. */
export function residentBytes(pid: number): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // Field 5 of /proc/PID/stat is the process group; the command name before it may hold spaces.
    const fields = readProcFile(Number(entry), 'stat')
      ?.replace(/^.*\) /, '')
      .split(' ');
    if (fields?.[2] !== String(pid)) continue;
    const match = /VmRSS:\s+(\d+) kB/.exec(readProcFile(Number(entry), 'status') ?? '');
    total += match ? Number(match[1]) * 1024 : 0;
  }
  return total;
}

function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

function readProcFile(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '(no log written)';
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
