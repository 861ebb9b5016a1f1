/**
 * Where a worker thread's module is, and how the thread must start to load it. Workers load
 * TypeScript sources when their parent does: when the parent module runs from a `.ts` file
 * (under tsx or vitest), the worker starts with `--import <tsx's loader>`, resolved from this
 * package so the working directory does not matter; Node 20 workers do not inherit the
 * parent's loader hooks. A compiled build (`.js`) runs the compiled worker without it.
 */
import { createRequire } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RuntimeError, RuntimeErrorCode } from './errors.js';

/**
 * The module `name` (without extension) beside the module at `parentUrl`, and the Worker's
 * `execArgv` for it; `what` names the workers in the error when tsx is missing.
 *
 * @example
 * const { filename, execArgv } = workerModule(import.meta.url, './agent.worker', 'agent workers');
 */
export function workerModule(parentUrl: string, name: string, what: string): { filename: string; execArgv: string[] } {
  const extension = extname(fileURLToPath(parentUrl));
  const filename = new URL(`${name}${extension}`, parentUrl).href;
  if (extension !== '.ts') return { filename, execArgv: [] };
  let loader: string;
  try {
    loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  } catch (error) {
    throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `${what} run TypeScript sources and need tsx installed, or a compiled build`, {
      cause: error,
    });
  }
  return { filename, execArgv: ['--import', loader] };
}

/**
 * Starts a worker thread on the module `name` beside the module at `parentUrl`. A TypeScript
 * module (the parent runs from `.ts`) is imported through tsx's API from a one-line script: a
 * Node 20 worker does not pass its entry module through the loader its `--import` registered.
 */
export function startWorker(parentUrl: string, name: string, what: string): Worker {
  const { filename, execArgv } = workerModule(parentUrl, name, what);
  if (execArgv.length === 0) return new Worker(new URL(filename));
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => tsx.tsImport(${JSON.stringify(filename)}, ${JSON.stringify(filename)}));`;
  return new Worker(bootstrap, { eval: true });
}
