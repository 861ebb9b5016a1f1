import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../ports.js';
import { ensureDebianPackage, startServer, waitUntilReady } from '../process.js';
import type { ServerContext, Started } from './types.js';

export interface RedisEndpoint {
  url: string;
}

/** Debian's redis-server on a free loopback port, without persistence. */
export async function startRedis(context: ServerContext): Promise<Started<RedisEndpoint>> {
  const binary = await ensureDebianPackage('redis-server', 'redis-server');
  const dir = join(context.runDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const launch = async () => {
    const server = startServer(
      binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
      { logFile: join(dir, 'redis.log') },
    );
    await waitUntilReady('Redis', server, () => pongs(url), 20_000);
    return [server.pid];
  };
  return { endpoint: { url }, pids: await launch(), relaunch: launch };
}

async function pongs(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // A refused probe is an answer (not yet), which connect() rejects with; without a listener
  // ioredis would also log the 'error' event as unhandled.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } finally {
    client.disconnect();
  }
}
