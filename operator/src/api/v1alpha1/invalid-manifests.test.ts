/**
 * The corpus of manifests the API server must refuse (crds/invalid/): each is applied with
 * kubectl as a user would, into a namespace of its own, and must be refused with the message
 * its `# expect:` line gives — a message that names the field.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CRDS_DIR, createNamespace, ensureCrds, kubectl } from '../../testing/cluster.js';

const INVALID_DIR = `${CRDS_DIR}invalid/`;
const corpus = readdirSync(INVALID_DIR)
  .filter((file) => file.endsWith('.yaml'))
  .sort()
  .map((file) => {
    const expectLine = /^# expect: (.+)$/m.exec(readFileSync(INVALID_DIR + file, 'utf8'));
    return { file, expected: expectLine?.[1]?.trim() ?? '' };
  });

describe('crds/invalid: manifests the API server refuses', () => {
  let namespace = '';
  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('invalid');
  });
  afterAll(async () => {
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('has at least 25 manifests, each with an # expect: line that names a spec field', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(25);
    for (const { file, expected } of corpus) expect(expected, file).toMatch(/spec\.[A-Za-z]/);
  });

  it.each(corpus)('refuses $file', async ({ file, expected }) => {
    const result = await kubectl(['apply', '-n', namespace, '-f', INVALID_DIR + file]);
    expect(result.code, result.stdout).not.toBe(0);
    expect(result.stderr).toContain(expected);
  });
});
