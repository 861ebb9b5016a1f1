/**
 * Test support: the dashboard's static build, built with `vite build` when it is missing or
 * older than its sources (a fresh clone, or an edit since the last run). Tests only.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DASHBOARD = fileURLToPath(new URL('../../../../dashboard/', import.meta.url));
const PROTOCOL = fileURLToPath(new URL('../protocol.ts', import.meta.url));

/** The directory of the dashboard's static build, built first when stale. */
export function dashboardBuild(): string {
  const build = join(DASHBOARD, 'build');
  const index = join(build, 'index.html');
  const sources = [
    join(DASHBOARD, 'src'),
    join(DASHBOARD, 'static'),
    join(DASHBOARD, 'svelte.config.js'),
    join(DASHBOARD, 'vite.config.ts'),
    join(DASHBOARD, 'package.json'),
    PROTOCOL,
  ];
  if (existsSync(index) && statSync(index).mtimeMs >= Math.max(...sources.map(newest))) return build;
  const vite = join(dirname(createRequire(join(DASHBOARD, 'package.json')).resolve('vite/package.json')), 'bin', 'vite.js');
  const result = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: DASHBOARD, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`vite build of the dashboard failed:\n${result.stdout}\n${result.stderr}`);
  return build;
}

function newest(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))));
}
