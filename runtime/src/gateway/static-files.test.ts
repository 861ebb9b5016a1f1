import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StaticFiles } from './static-files.js';

describe('the static build in memory', () => {
  let dir: string;
  let files: StaticFiles;
  const script = 'console.log("boot")';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'troupe-static-'));
    mkdirSync(join(dir, '_app', 'immutable'), { recursive: true });
    writeFileSync(
      join(dir, 'index.html'),
      `<!doctype html><html><body><script>${script}</script><script type="module" src="/_app/immutable/app.js"></script></body></html>`,
    );
    writeFileSync(join(dir, '_app', 'immutable', 'app.js'), `export const app = ${JSON.stringify('x'.repeat(4000))};`);
    writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    files = await StaticFiles.load(dir);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves hashed assets immutable and compressed, everything else revalidated', () => {
    const asset = files.lookup('/_app/immutable/app.js', 'gzip, deflate, br');
    expect(asset?.file.contentType).toBe('text/javascript; charset=utf-8');
    expect(asset?.file.cacheControl).toBe('public, max-age=31536000, immutable');
    expect(asset?.encoding).toBe('br');
    expect(asset!.body.length).toBeLessThan(asset!.file.identity.length / 10);
    const gzipped = files.lookup('/_app/immutable/app.js', 'gzip');
    expect(gzipped?.encoding).toBe('gzip');
    expect(gunzipSync(gzipped!.body).equals(gzipped!.file.identity)).toBe(true);
    expect(files.lookup('/_app/immutable/app.js', '')?.encoding).toBeUndefined();

    const icon = files.lookup('/favicon.svg', 'br');
    expect(icon?.file.contentType).toBe('image/svg+xml');
    expect(icon?.file.cacheControl).toBe('no-cache');
    // Too small to be worth compressing.
    expect(icon?.encoding).toBeUndefined();
  });

  it('answers client-side routes with the app shell and missing files with nothing', () => {
    const shell = files.lookup('/', '');
    expect(files.lookup('/projects/acme/shop', '')?.file).toBe(shell?.file);
    expect(files.lookup('/login', '')?.file).toBe(shell?.file);
    expect(files.lookup('/_app/immutable/missing.js', '')).toBeUndefined();
    expect(files.lookup('/robots.txt', '')).toBeUndefined();
  });

  it('allows the shell’s inline bootstrap script by hash in its CSP, and no other inline script', async () => {
    const { createHash } = await import('node:crypto');
    const csp = files.lookup('/', '')!.file.headers.find(([name]) => name === 'Content-Security-Policy')?.[1];
    const hash = createHash('sha256').update(script).digest('base64');
    const directives = csp!.split('; ');
    expect(directives).toContain(`script-src 'self' 'sha256-${hash}'`);
    expect(directives).toContain("frame-ancestors 'none'");
  });

  it('refuses to start from a folder that holds no build', async () => {
    await expect(StaticFiles.load(join(dir, 'nope'))).rejects.toThrow(/cannot be read; build it with `npm run build -w dashboard`/);
    await expect(StaticFiles.load(join(dir, '_app'))).rejects.toThrow(/has no index.html/);
  });
});
