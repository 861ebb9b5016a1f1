// Installs the workspace's dependencies on a fresh clone, so `npm start` and `npm test`
// work as the first commands anyone runs. An existing install is left alone.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'node_modules', '.package-lock.json'))) {
  console.log('troupe: node_modules is missing, running `npm ci` once');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}
