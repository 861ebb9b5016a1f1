/**
 * Private servers for fault-injection tests: a test that restarts a broker or freezes a
 * database gets its own instance, so the shared servers of the run stay healthy for every
 * other test. Their pids are recorded, so `stopInfra` removes any a crashed test left behind.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HarnessError, HarnessErrorCode } from './errors.js';
import { REPO_ROOT, defaultCacheDir } from './paths.js';
import { isAlive, stopServer } from './process.js';
import { startCassandra, type CassandraEndpoint } from './servers/cassandra.js';
import { startKafka, type KafkaEndpoint } from './servers/kafka.js';
import { startRedis, type RedisEndpoint } from './servers/redis.js';
import type { ServerContext, Started } from './servers/types.js';

const STARTERS = { kafka: startKafka, cassandra: startCassandra, redis: startRedis } as const;

interface PrivateEndpoints {
  kafka: KafkaEndpoint;
  cassandra: CassandraEndpoint;
  redis: RedisEndpoint;
}

/** A server of one test's own, with the faults a test may inject. */
export interface PrivateServer<E> {
  endpoint: E;
  /** Stops it: SIGKILL when `hard`, else SIGTERM with a grace period. Its data stays. */
  stop(options?: { hard?: boolean }): Promise<void>;
  /** Starts it again after `stop`, on the same ports and data; resolves when it answers. */
  start(): Promise<void>;
  /** Freezes its processes (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Thaws it after `pause` (SIGCONT). */
  resume(): void;
  /** Stops it for good and deletes its data. */
  dispose(): Promise<void>;
}

function registryFile(): string {
  return join(REPO_ROOT, '.troupe', 'infra', 'private.json');
}

function readRegistry(): number[] {
  return existsSync(registryFile()) ? (JSON.parse(readFileSync(registryFile(), 'utf8')) as number[]) : [];
}

function writeRegistry(pids: number[]): void {
  mkdirSync(join(REPO_ROOT, '.troupe', 'infra'), { recursive: true });
  writeFileSync(registryFile(), JSON.stringify(pids.filter(isAlive)));
}

/** Stops every private server still running (left by a test that crashed) and forgets them. */
export async function stopPrivateServers(): Promise<void> {
  await Promise.all(readRegistry().map((pid) => stopServer(pid, 2_000)));
  rmSync(registryFile(), { force: true });
}

/**
 * Starts a private Kafka, Cassandra or Redis for one test.
 *
 * @example
 * const kafka = await startPrivateServer('kafka');
 * await kafka.stop({ hard: true });
 * await kafka.start();
 * await kafka.dispose();
 */
export async function startPrivateServer<K extends keyof PrivateEndpoints>(name: K): Promise<PrivateServer<PrivateEndpoints[K]>> {
  const runDir = mkdtempSync(join(REPO_ROOT, '.troupe', 'infra', `private-${name}-`));
  const context: ServerContext = { cacheDir: defaultCacheDir(process.env), runDir, repoRoot: REPO_ROOT };
  const started = (await STARTERS[name](context)) as Started<PrivateEndpoints[K]>;
  let pids = started.pids;
  writeRegistry([...readRegistry(), ...pids]);
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(-pid, sig);
      } catch (error) {
        // ESRCH: the process group is gone already, which is what every signal here wants or allows.
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
  };
  const stop = async ({ hard = false } = {}) => {
    if (hard) signal('SIGKILL');
    await Promise.all(pids.map((pid) => stopServer(pid)));
  };
  return {
    endpoint: started.endpoint,
    stop,
    async start() {
      if (pids.some(isAlive)) throw new HarnessError(HarnessErrorCode.StartFailed, `private ${name} is still running; stop it first`);
      pids = await started.relaunch!();
      writeRegistry([...readRegistry(), ...pids]);
    },
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    async dispose() {
      signal('SIGCONT');
      await stop();
      rmSync(runDir, { recursive: true, force: true });
      writeRegistry(readRegistry().filter((pid) => !pids.includes(pid)));
    },
  };
}
