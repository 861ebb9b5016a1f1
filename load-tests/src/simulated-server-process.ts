/**
 * The simulated provider's HTTP server in a child process, so that its work is not counted as
 * the benchmark's: the scenarios that buy LLM calls measure their own process's CPU and memory.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

export interface SimulatedServerProcess {
  /** The OpenAI-compatible base URL, for `createProvider('simulated', { type: 'simulated', baseURL })`. */
  baseURL: string;
  stop(): Promise<void>;
}

/** Starts a SimulatedServer answering every call after exactly `latencyMs` (no token streaming time). */
export async function startSimulatedServerProcess(options: { latencyMs: number; seed: number }): Promise<SimulatedServerProcess> {
  const runtime = pathToFileURL(require.resolve('@troupe/runtime')).href;
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const script = [
    `const { SimulatedServer } = await import(${JSON.stringify(runtime)});`,
    `const server = await SimulatedServer.start({ latencyMs: ${options.latencyMs}, tokensPerSecond: Infinity, seed: ${options.seed} });`,
    'console.log(server.openaiBaseURL);',
    // Ends with its parent: stdin closes when the parent goes, even when it crashed.
    "process.stdin.on('end', () => process.exit(0)).resume();",
  ].join('\n');
  const child = spawn(process.execPath, ['--import', tsx, '--input-type=module', '--eval', script], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const baseURL = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the simulated server exited with ${code} before listening`)));
  });
  return {
    baseURL,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      await exited;
    },
  };
}
