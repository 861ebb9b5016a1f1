/**
 * Test support: a TypeScript program in a real child process, whose stdout lines the test can
 * wait for, and which the test can kill with SIGKILL as a crash would.
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
}

/** Starts `file` under tsx with `arg` (JSON-encoded) as argv[2]. */
export function startChild(file: string, arg: unknown): ChildProgram {
  const child = spawn(process.execPath, ['--import', 'tsx', file, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const listener of listeners) listener(line);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    lines,
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
