import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runtimeConformance } from './conformance.js';

runtimeConformance('the embedded log and SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-runtime-'));
  return {
    transport: { kind: 'embedded', dir: join(dir, 'log') },
    store: { kind: 'embedded', path: join(dir, 'state.db') },
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
