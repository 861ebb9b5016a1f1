/**
 * Pushing deliverables with the `git` CLI: each push works in a scratch clone of its own under
 * the data directory — fetch the branch (or start it), write the files, commit as Troupe, push —
 * and removes it afterwards. Credentials of an http(s) remote reach git through GIT_ASKPASS
 * and the child's environment, never its arguments or a config file, and are cut from errors.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { devNull } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { redact } from '../../security/redact.js';
import { checkArtifactName } from '../artifacts.js';
import { DeliveryError, redactUrl, type GitPush, type GitPusher } from './delivery.types.js';

const run = promisify(execFile);

export interface GitCliOptions {
  /** Scratch clones are made here, one per push, and removed after it. */
  scratchDir: string;
  /** The author and committer of delivery commits (default `Troupe <troupe@troupe.dev>`). */
  author: { name: string; email: string };
  /** A git command that runs longer than this fails the push (default 2 min). */
  timeoutMs: number;
  /** The git executable (default `git` on the PATH). */
  binary: string;
}

export const GIT_CLI_DEFAULTS = {
  author: { name: 'Troupe', email: 'troupe@troupe.dev' },
  timeoutMs: 120_000,
  binary: 'git',
} as const satisfies Partial<GitCliOptions>;

/** Answers git's username and password prompts from the environment the push gives it. */
const ASKPASS = `#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$TROUPE_GIT_USERNAME" ;;
  *) printf '%s\\n' "$TROUPE_GIT_PASSWORD" ;;
esac
`;

/**
 * @example
 * const git = new GitCliPusher({ scratchDir: join(dataDir, 'delivery', 'git') });
 * const { commit } = await git.push({ url: 'https://git.acme.example/shop.git', branch: 'main', files, message });
 */
export class GitCliPusher implements GitPusher {
  readonly options: GitCliOptions;

  constructor(options: Pick<GitCliOptions, 'scratchDir'> & Partial<GitCliOptions>) {
    this.options = { ...GIT_CLI_DEFAULTS, ...options };
    if (!(Number.isInteger(this.options.timeoutMs) && this.options.timeoutMs > 0)) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `GitCliPusher option timeoutMs must be a positive integer, got ${this.options.timeoutMs}`,
      );
    }
  }

  async push(push: GitPush): Promise<{ branch: string; commit: string }> {
    const target = `${redactUrl(push.url)}#${push.branch || 'HEAD'}`;
    const refuse = (message: string) => new DeliveryError('git', target, message, { retriable: false });
    if (push.files.length === 0) throw refuse('there are no files to deliver');
    for (const file of push.files) {
      checkArtifactName(file.path);
      if (file.path.split('/')[0] === '.git') throw refuse(`${file.path} would write into the repository's own .git directory`);
    }

    await mkdir(this.options.scratchDir, { recursive: true });
    const scratch = await mkdtemp(join(this.options.scratchDir, 'push-'));
    const work = join(scratch, 'work');
    const { name, email } = this.options.author;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: scratch,
      LANG: 'C',
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: devNull,
      GIT_AUTHOR_NAME: name,
      GIT_AUTHOR_EMAIL: email,
      GIT_COMMITTER_NAME: name,
      GIT_COMMITTER_EMAIL: email,
    };
    const secrets: string[] = [];
    if (push.credentials !== undefined) {
      const askpass = join(scratch, 'askpass.sh');
      await writeFile(askpass, ASKPASS);
      await chmod(askpass, 0o700);
      Object.assign(env, {
        GIT_ASKPASS: askpass,
        TROUPE_GIT_USERNAME: push.credentials.username,
        TROUPE_GIT_PASSWORD: push.credentials.password,
      });
      secrets.push(push.credentials.password);
    }
    const git = async (...args: string[]): Promise<string> => {
      try {
        const { stdout } = await run(this.options.binary, args, { cwd: work, env, timeout: this.options.timeoutMs, maxBuffer: 16 << 20 });
        return stdout.trim();
      } catch (error) {
        const failed = error as { stderr?: string; message: string };
        const said = (failed.stderr ?? '').trim() || failed.message;
        throw new DeliveryError('git', target, `git ${args[0]} failed: ${scrub(said, push.url, secrets)}`, { retriable: true });
      }
    };

    try {
      await mkdir(work);
      await git('init', '-q');
      await git('remote', 'add', 'origin', push.url);
      const branch = push.branch === '' ? await defaultBranch(git) : push.branch;
      await git('check-ref-format', '--branch', branch).catch(() => {
        throw refuse(`branch ${JSON.stringify(branch)} is not a valid branch name`);
      });
      await git('symbolic-ref', 'HEAD', `refs/heads/${branch}`);
      const fetched = await git('fetch', '-q', 'origin', `refs/heads/${branch}`).then(
        () => true,
        (error: DeliveryError) => {
          // An empty repository, or one without the branch yet: the push starts it.
          if (/couldn't find remote ref/i.test(error.message)) return false;
          throw error;
        },
      );
      if (fetched) await git('checkout', '-q', '-B', branch, 'FETCH_HEAD');
      for (const file of push.files) {
        const path = join(work, file.path);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, file.content);
      }
      await git('add', '-A');
      if ((await git('status', '--porcelain')) !== '') {
        await git('commit', '-q', '-m', push.message);
        await git('push', '-q', 'origin', `HEAD:refs/heads/${branch}`);
      }
      return { branch, commit: await git('rev-parse', 'HEAD') };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
}

/** The branch the remote's HEAD names; `main` when it names none, as an empty repository may not. */
async function defaultBranch(git: (...args: string[]) => Promise<string>): Promise<string> {
  const listed = await git('ls-remote', '--symref', 'origin', 'HEAD');
  return /^ref: refs\/heads\/(\S+)\s+HEAD$/m.exec(listed)?.[1] ?? 'main';
}

/** git's words without the remote's credentials, whether they came in the URL or from the Secret. */
function scrub(text: string, url: string, secrets: readonly string[]): string {
  return redact(text.split(url).join(redactUrl(url)), secrets);
}
