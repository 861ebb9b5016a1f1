/**
 * values.schema.json refuses bad values before anything is rendered. Each file of bad-values/
 * holds one mistake a user could make and starts with `# expect: <text>`, a part of helm's
 * refusal that names the key; `helm template` and `helm lint` must both refuse it with that text.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CHART_DIR, helm } from './chart.js';

const BAD_DIR = fileURLToPath(new URL('./bad-values/', import.meta.url));
const corpus = readdirSync(BAD_DIR)
  .filter((file) => file.endsWith('.yaml'))
  .sort()
  .map((file) => ({ file, expected: /^# expect: (.+)$/m.exec(readFileSync(BAD_DIR + file, 'utf8'))?.[1]?.trim() ?? '' }));

describe('values.schema.json', () => {
  it('has a bad values file for each kind of mistake, each expecting a refusal that names the key', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(15);
    for (const { file, expected } of corpus) expect(expected, file).toMatch(/^at '\/[\w/]+': |^at '': .*'\w+'/);
  });

  it.each(corpus)('refuses $file', async ({ file, expected }) => {
    const rendered = await helm(['template', 'troupe', CHART_DIR, '-f', BAD_DIR + file]);
    expect(rendered.code, rendered.stdout).not.toBe(0);
    expect(rendered.stderr).toContain("values don't meet the specifications of the schema");
    expect(rendered.stderr).toContain(expected);

    const linted = await helm(['lint', '--strict', CHART_DIR, '-f', BAD_DIR + file]);
    expect(linted.code).not.toBe(0);
    expect(linted.stdout + linted.stderr).toContain(expected);
  });
});
