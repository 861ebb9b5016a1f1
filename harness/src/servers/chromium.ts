import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../ports.js';
import { ensureDebianPackage, startServer, waitUntilReady } from '../process.js';
import type { ServerContext, Started } from './types.js';

export interface ChromiumEndpoint {
  executablePath: string;
  /** http://127.0.0.1:PORT for playwright-core's `chromium.connectOverCDP`. */
  cdpUrl: string;
}

/**
 * Flags that keep headless Debian Chromium quiet on a machine without internet: without the
 * background-networking ones it retries refused connections to Google's hosts all the time.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
] as const;

/** One headless Chromium per run, driven over the DevTools protocol. */
export async function startChromium(context: ServerContext): Promise<Started<ChromiumEndpoint>> {
  const executablePath = await ensureDebianPackage('chromium', 'chromium');
  const dir = join(context.runDir, 'chromium');
  mkdirSync(join(dir, 'profile'), { recursive: true });
  const port = await freePort();
  const server = startServer(
    executablePath,
    [
      ...CHROMIUM_ARGS,
      `--user-data-dir=${join(dir, 'profile')}`,
      '--remote-debugging-address=127.0.0.1',
      `--remote-debugging-port=${port}`,
      'about:blank',
    ],
    { logFile: join(dir, 'chromium.log') },
  );
  const cdpUrl = `http://127.0.0.1:${port}`;
  await waitUntilReady('Chromium', server, async () => (await fetch(`${cdpUrl}/json/version`)).ok, 30_000);
  return { endpoint: { executablePath, cdpUrl }, pids: [server.pid] };
}
