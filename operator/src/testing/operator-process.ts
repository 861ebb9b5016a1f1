/**
 * Test support: the operator's main.ts in a child process, as a replica runs it — flags from
 * the environment, JSON log lines on stderr the test can wait for, signals as Kubernetes sends them.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));

export interface OperatorProcess {
  readonly pid: number;
  /** Log lines as parsed JSON. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the first log line whose `msg` is `message`. */
  waitForLog(message: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal: NodeJS.Signals): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

export function startOperatorProcess(env: Record<string, string>): OperatorProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: { message: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stderr }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      line = { msg: text };
    }
    logs.push(line);
    for (const waiter of waiters.filter((candidate) => candidate.message === line.msg)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    pid: child.pid as number,
    logs,
    exited,
    waitForLog(message, timeoutMs = 30_000) {
      const seen = logs.find((line) => line.msg === message);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ message, resolve });
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `operator ${env.POD_NAME} did not log "${message}" within ${timeoutMs} ms; it logged:\n${logs.map((line) => JSON.stringify(line)).join('\n')}`,
              ),
            ),
          timeoutMs,
        );
        timer.unref();
        void exited.then(() =>
          reject(
            new Error(
              `operator ${env.POD_NAME} exited before logging "${message}":\n${logs.map((line) => JSON.stringify(line)).join('\n')}`,
            ),
          ),
        );
      });
    },
    async stop(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
