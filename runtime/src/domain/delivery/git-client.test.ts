/**
 * The git pusher against real bare repositories served by `git daemon` over git://: what lands
 * on the branch, on top of what was there, and which failures are worth another try.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@troupe/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { git, startGitDaemon, startGitHttpServer, type GitDaemon } from './delivery-fixtures.js';
import { DeliveryError } from './delivery.types.js';
import { GitCliPusher } from './git-client.js';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('GitCliPusher over git://', () => {
  let root: string;
  let daemon: GitDaemon;
  let pusher: GitCliPusher;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'troupe-git-'));
    daemon = await startGitDaemon(join(root, 'served'));
    pusher = new GitCliPusher({ scratchDir: join(root, 'scratch') });
  });

  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  async function bareRepository(name: string): Promise<string> {
    await git(root, 'init', '-q', '--bare', '-b', 'main', join(root, 'served', name));
    return daemon.url(name);
  }

  async function clone(url: string, branch: string): Promise<string> {
    const dir = mkdtempSync(join(root, 'clone-'));
    await git(root, 'clone', '-q', '--branch', branch, url, dir);
    return dir;
  }

  const files = [
    { path: 'README.md', content: Buffer.from('# Storefront\n') },
    { path: 'src/cart.ts', content: Buffer.from('export const cart = [];\n') },
    { path: 'assets/logo.bin', content: Buffer.from([0, 255, 1, 254, 10, 13]) },
  ];

  it('commits the files as Troupe to a new branch of an empty repository, and says which commit', async () => {
    const url = await bareRepository('shop.git');
    const pushed = await pusher.push({ url, branch: 'delivery', files, message: 'Deliver acme/shop, generation 3\n\n3 artefacts' });

    expect(pushed.branch).toBe('delivery');
    expect(await git(root, 'ls-remote', url, 'refs/heads/delivery')).toBe(`${pushed.commit}\trefs/heads/delivery`);
    const dir = await clone(url, 'delivery');
    for (const file of files) expect(sha256(readFileSync(join(dir, file.path))), file.path).toBe(sha256(file.content));
    expect(await git(dir, 'log', '-1', '--format=%an <%ae>|%cn <%ce>|%s')).toBe(
      'Troupe <troupe@troupe.dev>|Troupe <troupe@troupe.dev>|Deliver acme/shop, generation 3',
    );
    expect(await git(dir, 'rev-list', '--count', 'HEAD')).toBe('1');
    // Scratch clones are removed once the push is over.
    expect(readdirSync(join(root, 'scratch'))).toEqual([]);
  });

  it("builds on the branch's history, keeps the client's files there, and pushes nothing when nothing changed", async () => {
    const url = await bareRepository('kept.git');
    const seed = mkdtempSync(join(root, 'seed-'));
    await git(seed, 'init', '-q', '-b', 'main');
    writeFileSync(join(seed, 'CLIENT.md'), 'ours\n');
    await git(seed, 'add', '-A');
    await git(seed, '-c', 'user.name=Client', '-c', 'user.email=client@acme.example', 'commit', '-q', '-m', 'the client starts');
    await git(seed, 'push', '-q', url, 'HEAD:refs/heads/main');
    const before = await git(seed, 'rev-parse', 'HEAD');

    const first = await pusher.push({ url, branch: 'main', files, message: 'Deliver acme/kept, generation 1' });
    const dir = await clone(url, 'main');
    expect(await git(dir, 'rev-parse', 'HEAD^')).toBe(before);
    expect(readFileSync(join(dir, 'CLIENT.md'), 'utf8')).toBe('ours\n');
    expect(sha256(readFileSync(join(dir, 'src/cart.ts')))).toBe(sha256(files[1]!.content));

    const again = await pusher.push({ url, branch: 'main', files, message: 'Deliver acme/kept, generation 1' });
    expect(again).toEqual(first);
    expect(await git(root, 'ls-remote', url, 'refs/heads/main')).toBe(`${first.commit}\trefs/heads/main`);
  });

  it("pushes to the remote's default branch when none is named, and to main in an empty repository", async () => {
    const url = await bareRepository('trunk.git');
    const seed = mkdtempSync(join(root, 'seed-'));
    await git(seed, 'init', '-q', '-b', 'trunk');
    await git(seed, '-c', 'user.name=Client', '-c', 'user.email=client@acme.example', 'commit', '-q', '--allow-empty', '-m', 'start');
    await git(seed, 'push', '-q', url, 'HEAD:refs/heads/trunk');
    await git(join(root, 'served', 'trunk.git'), 'symbolic-ref', 'HEAD', 'refs/heads/trunk');

    expect((await pusher.push({ url, branch: '', files, message: 'Deliver' })).branch).toBe('trunk');
    const empty = await bareRepository('empty.git');
    expect((await pusher.push({ url: empty, branch: '', files, message: 'Deliver' })).branch).toBe('main');
  });

  it('gives an http remote the credentials it asks for, from the environment of the push', async () => {
    await bareRepository('private.git');
    const credentials = { username: 'troupe-bot', password: 'token-0123456789abcdef' };
    const http = await startGitHttpServer(join(root, 'served'), credentials);
    try {
      const pushed = await pusher.push({
        url: http.url('private.git'),
        branch: 'main',
        credentials,
        files,
        message: 'Deliver acme/private',
      });
      expect(await git(root, 'ls-remote', daemon.url('private.git'), 'refs/heads/main')).toBe(`${pushed.commit}\trefs/heads/main`);
      // git asked: the first request went without credentials.
      expect(http.refused).toBeGreaterThan(0);

      const wrong = await pusher
        .push({
          url: http.url('private.git'),
          branch: 'main',
          credentials: { ...credentials, password: 'wrong-password-0000' },
          files,
          message: 'm',
        })
        .then(
          () => expect.unreachable('the push succeeded'),
          (error: unknown) => error as DeliveryError,
        );
      expect(wrong.retriable).toBe(true);
      expect(wrong.message).toMatch(/Authentication failed/);
      expect(wrong.message).not.toContain('wrong-password-0000');
    } finally {
      await http.stop();
    }
  });

  it('refuses what can never work at once, retries what may, and never shows a password', async () => {
    const url = await bareRepository('refused.git');
    const failure = (promise: Promise<unknown>) =>
      promise.then(
        () => expect.unreachable('the push succeeded'),
        (error: unknown) => error as DeliveryError,
      );

    const intoGit = await failure(
      pusher.push({ url, branch: 'main', files: [{ path: '.git/hooks/post-checkout', content: Buffer.from('x') }], message: 'm' }),
    );
    expect(intoGit).toBeInstanceOf(DeliveryError);
    expect(intoGit.retriable).toBe(false);
    expect(intoGit.message).toMatch(/\.git\/hooks\/post-checkout would write into the repository's own \.git directory/);

    const badBranch = await failure(pusher.push({ url, branch: 'a..b', files, message: 'm' }));
    expect(badBranch.retriable).toBe(false);
    expect(badBranch.message).toMatch(/branch "a\.\.b" is not a valid branch name/);

    const port = await freePort();
    const unreachable = await failure(
      pusher.push({
        url: `http://troupe:url-password-1234@127.0.0.1:${port}/shop.git`,
        branch: 'main',
        credentials: { username: 'troupe', password: 'secret-password-5678' },
        files,
        message: 'm',
      }),
    );
    expect(unreachable.retriable).toBe(true);
    expect(unreachable.message).toMatch(new RegExp(`git fetch failed: .*127\\.0\\.0\\.1:${port}`));
    expect(unreachable.message).not.toContain('url-password-1234');
    expect(unreachable.message).not.toContain('secret-password-5678');
  });
});
