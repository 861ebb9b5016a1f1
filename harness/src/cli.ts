/**
 * `npm run infra:up | infra:status | infra:down`: keeps the real test servers running between
 * test runs while you iterate; `npm test` reuses them and leaves them running.
 */
import { infraStatus, readInfra, startInfra, stopInfra } from './infra.js';
import { REPO_ROOT, defaultCacheDir } from './paths.js';

const USAGE = 'usage: tsx harness/src/cli.ts up|status|down';

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'up': {
      const started = Date.now();
      const { state, reused } = await startInfra({ repoRoot: REPO_ROOT, cacheDir: defaultCacheDir(process.env) }, 'infra-up');
      console.log(`${reused ? 'already running' : `started in ${((Date.now() - started) / 1000).toFixed(1)}s`}:`);
      console.log(JSON.stringify(state.endpoints, null, 2));
      return 0;
    }
    case 'status': {
      const state = readInfra(REPO_ROOT);
      if (state === undefined) {
        console.log('not running (start with `npm run infra:up`)');
        return 1;
      }
      const rows = infraStatus(state);
      for (const row of rows) {
        console.log(
          `${row.server.padEnd(10)} ${row.alive ? 'up  ' : 'DOWN'} ${mib(row.residentBytes).padStart(9)}  pids ${row.pids.join(',') || '-'}`,
        );
      }
      console.log(
        `${'total'.padEnd(15)} ${mib(rows.reduce((sum, row) => sum + row.residentBytes, 0)).padStart(9)}  since ${state.startedAt}`,
      );
      return 0;
    }
    case 'down':
      await stopInfra(REPO_ROOT);
      console.log('stopped');
      return 0;
    default:
      console.error(USAGE);
      return 2;
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
