/**
 * `troupe token` as a user runs it, against an embedded runtime serving gRPC with a gateway in
 * front, both checking tokens with the same secret: a client's token minted from
 * TROUPE_TOKEN_SECRET sees its own tenant on the gateway and on RuntimeService and is refused
 * another's; an SRE token sees every namespace; a token of another secret is refused; and a
 * missing secret, a short one, bad flags and bad claims are usage errors that name the problem.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { Gateway, Tokens, createProvider, startEmbeddedRuntime, type EmbeddedRuntime } from '@troupe/runtime';
import { samplePools } from '@troupe/runtime/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcRuntimeClient, RuntimeCallError } from '../clients/runtime.grpc.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'operator/bin/troupe.mjs');
const SECRET = 'token-cli-test-secret-of-at-least-32-bytes';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI binary with `secret` as TROUPE_TOKEN_SECRET (none when null); never throws on a non-zero exit. */
function troupe(args: readonly string[], secret: string | null = SECRET): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'TROUPE_TOKEN_SECRET'));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: ROOT, env: secret === null ? env : { ...env, TROUPE_TOKEN_SECRET: secret }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}

async function mint(args: readonly string[]): Promise<string> {
  const run = await troupe(['token', ...args]);
  expect(run.code, run.stderr).toBe(0);
  expect(run.stdout).toMatch(/^v1\.[\w-]+\.[\w-]+\n$/);
  return run.stdout.trim();
}

describe('troupe token', () => {
  let dir = '';
  let runtime: EmbeddedRuntime;
  let gateway: Gateway;

  async function get(path: string, token: string): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: response.status, body: await response.json() };
  }

  async function grpcPools(token: string, namespace?: string): Promise<string[]> {
    const client = new GrpcRuntimeClient({ address: runtime.grpcAddress!, token });
    try {
      return (await client.listPools(namespace)).map((entry) => `${entry.namespace}/${entry.status?.pool}`);
    } finally {
      client.close();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'troupe-cli-token-'));
    // The runtime's side of the secret, as a node reads TROUPE_TOKEN_SECRET.
    const tokens = new Tokens({ secret: SECRET });
    runtime = await startEmbeddedRuntime({
      dataDir: dir,
      providers: [createProvider('simulated', { type: 'simulated' })],
      pools: [...samplePools('acme'), ...samplePools('globex')],
      grpc: { port: 0, tokens },
    });
    gateway = await Gateway.start({ api: runtime.company, tokens, port: 0, poolSampleMs: 0 });
  }, 90_000);

  afterAll(async () => {
    await gateway?.stop();
    await runtime?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("mints a client's token that sees its own tenant on the gateway and on RuntimeService, and no other", async () => {
    const acme = await mint(['--tenant', 'acme', '--sub', 'alice@acme']);
    expect(await get('/api/me', acme)).toMatchObject({ status: 200, body: { sub: 'alice@acme', role: 'client', tenant: 'acme' } });
    const pools = (await get('/api/pools', acme)) as { status: number; body: { pools: { namespace: string }[] } };
    expect(pools.status).toBe(200);
    expect(pools.body.pools.length).toBeGreaterThan(0);
    expect(new Set(pools.body.pools.map((pool) => pool.namespace))).toEqual(new Set(['acme']));
    expect(await get('/api/pools?namespace=globex', acme)).toMatchObject({ status: 403, body: { error: { code: 'PERMISSION_DENIED' } } });

    expect(await grpcPools(acme, 'acme')).toContain('acme/developers');
    const refused = await grpcPools(acme, 'globex').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RuntimeCallError);
    expect((refused as RuntimeCallError).grpcCode).toBe(GrpcStatus.PERMISSION_DENIED);
  });

  it('mints platform tokens, names the bearer after the role by default, and prints the claims with -o json', async () => {
    const sre = await mint(['--role', 'sre']);
    expect(await get('/api/me', sre)).toMatchObject({ status: 200, body: { sub: 'sre', role: 'sre', tenant: null } });
    const every = await grpcPools(sre);
    expect(every).toEqual(expect.arrayContaining(['acme/developers', 'globex/developers']));

    const before = Math.floor(Date.now() / 1000);
    const run = await troupe(['token', '--tenant', 'globex', '--ttl', '90m', '-o', 'json']);
    expect(run.code, run.stderr).toBe(0);
    const printed = JSON.parse(run.stdout) as { token: string; sub: string; tenant: string; exp: number; expiresAt: string };
    expect(printed).toMatchObject({ sub: 'client@globex', tenant: 'globex' });
    expect(printed.exp).toBeGreaterThanOrEqual(before + 90 * 60);
    expect(printed.exp).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 90 * 60);
    expect(new Date(printed.expiresAt).getTime()).toBe(printed.exp * 1000);
    expect(await get('/api/me', printed.token)).toMatchObject({ status: 200, body: { tenant: 'globex' } });
  });

  it('mints nothing the runtime accepts from another secret', async () => {
    const run = await troupe(['token', '--role', 'admin'], 'a-different-secret-of-at-least-32-bytes!!');
    expect(run.code, run.stderr).toBe(0);
    expect(await get('/api/me', run.stdout.trim())).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHENTICATED' } } });
    expect((await grpcPools(run.stdout.trim()).catch((error: unknown) => error)) as RuntimeCallError).toMatchObject({
      grpcCode: GrpcStatus.UNAUTHENTICATED,
    });
  });

  it('refuses a missing or short secret, bad flags and bad claims as usage errors that name the problem', async () => {
    const cases: [string[], string | null, string][] = [
      [['--tenant', 'acme'], null, 'error: TROUPE_TOKEN_SECRET is not set'],
      [['--tenant', 'acme'], 'short', 'error: TROUPE_TOKEN_SECRET: Tokens option secret must be at least 32 bytes, got 5'],
      [[], SECRET, 'error: token needs one of --tenant NS (a client of namespace NS) and --role admin|sre'],
      [['--tenant', 'acme', '--role', 'admin'], SECRET, 'error: token needs one of --tenant NS'],
      [['--role', 'root'], SECRET, 'error: --role must be admin or sre, got "root"'],
      [['--tenant', 'Acme_Corp'], SECRET, 'error: token claims: tenant must be a namespace name (DNS label)'],
      [['--tenant', 'acme', '--ttl', 'forever'], SECRET, 'error: --ttl must be a duration such as 30s, 10m or 1h, got "forever"'],
      [['--tenant', 'acme', '--ttl', '0s'], SECRET, 'error: --ttl must be at least 1s'],
      [['--tenant', 'acme', 'extra'], SECRET, 'error: expected: troupe token'],
    ];
    for (const [args, secret, message] of cases) {
      const run = await troupe(['token', ...args], secret);
      expect({ code: run.code, stdout: run.stdout }, args.join(' ')).toEqual({ code: 2, stdout: '' });
      expect(run.stderr, args.join(' ')).toContain(message);
    }
  });

  it('is listed in --help', async () => {
    const help = await troupe(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('token (--tenant NS | --role admin|sre) [--sub NAME] [--ttl 12h]');
  });
});
