/**
 * Test support: a TypeScript program in a real child process, whose stdout lines the test can
 * wait for, and which the test can kill with SIGKILL as a crash would, or signal as Kubernetes
 * stops a pod.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ChildProgram {
  /** Resolves when the child has printed `line` (at any time since it started). */
  waitFor(line: string, timeoutMs?: number): Promise<void>;
  /** Every line printed so far. */
  readonly lines: readonly string[];
  /** Calls `onLine` for every line printed from now on. */
  onLine(onLine: (line: string) => void): void;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  /** Sends `signal` (e.g. SIGTERM) and returns at once. */
  signal(signal: NodeJS.Signals): void;
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Everything printed on stderr so far, each line after the time it arrived (`hh:mm:ss.sss`, UTC). */
  readonly stderr: string;
}

/**
 * Starts `file` under tsx with `arg` (JSON-encoded) as argv[2] when given, and `env` added to
 * this process's environment.
 */
export function startChild(file: string, arg?: unknown, options: { env?: Record<string, string> } = {}): ChildProgram {
  const args = ['--import', 'tsx', file, ...(arg === undefined ? [] : [JSON.stringify(arg)])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const lines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  let stderr = '';
  // A child's own lines rarely say when: the time each arrived orders what several children said.
  createInterface({ input: child.stderr }).on('line', (line) => (stderr += `${new Date().toISOString().slice(11, 23)} ${line}\n`));
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const listener of listeners) listener(line);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    lines,
    exited,
    get stderr() {
      return stderr;
    },
    signal: (signal) => void child.kill(signal),
    onLine: (listener) => listeners.push(listener),
    waitFor: (line, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        if (lines.includes(line)) return resolve();
        listeners.push((printed) => printed === line && resolve());
        void exited.then(() => reject(new Error(`${file} exited before printing ${line}:\n${stderr}`)));
        setTimeout(() => reject(new Error(`${file} did not print ${line} within ${timeoutMs} ms:\n${stderr}`)), timeoutMs).unref();
      }),
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
