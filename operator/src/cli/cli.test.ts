/**
 * The troupe CLI against `npm start`'s entry (runtime/src/main.ts) in a child process, as a user
 * drives them: the samples applied through the embedded resource store, tables and JSON, an
 * invalid manifest refused before anything is sent, an approval gate, a crash (SIGKILL) while
 * the project waits and another while it runs, the project finishing after both, waiting on a
 * new project, its activity feed followed live, scaling a pool (with the CLI and with the
 * dashboard's Scale), deleting, and the exit codes
 * scripts rely on. The simulated provider is made slower than instant so that a crash lands in
 * the middle of the work.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '@troupe/harness';
import { eventually, startChild, type ChildProgram } from '@troupe/runtime/testing';
import { parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeKubeconfig } from '../embedded/kubeconfig.js';
import { CRDS_DIR } from '../testing/cluster.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(ROOT, 'runtime/src/main.ts');
const BIN = join(ROOT, 'operator/bin/troupe.mjs');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The sample company, with a simulated provider slow enough that a crash lands mid-phase. */
async function samples(dir: string): Promise<void> {
  for (const file of ['namespace', 'pools', 'project', 'workflow', 'provider']) {
    const text = await readFile(join(CRDS_DIR, 'samples', `${file}.yaml`), 'utf8');
    const documents = parseAllDocuments(text).map((document) => document.toJS() as { kind: string; spec?: object });
    for (const document of documents) {
      if (document.kind === 'ModelProvider')
        document.spec = { ...document.spec, simulated: { latencyMs: 700, tokensPerSecond: 1000, seed: 42 } };
    }
    await writeFile(join(dir, `${file}.yaml`), documents.map((document) => stringify(document)).join('---\n'));
  }
}

describe('troupe CLI against npm start', () => {
  let dataDir = '';
  let samplesDir = '';
  let apiPort = 0;
  let company: ChildProgram | undefined;

  function env(): NodeJS.ProcessEnv {
    return { ...process.env, TROUPE_KUBECONFIG: join(dataDir, 'kubeconfig') };
  }

  /** Runs the CLI binary as a user would; never throws on a non-zero exit. */
  function troupe(args: readonly string[]): Promise<Run> {
    return new Promise((resolve) => {
      execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env: env(), timeout: 150_000 }, (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
      });
    });
  }

  /** The CLI as a process whose output the test reads as it comes. */
  function troupeLive(args: readonly string[]): { lines: string[]; done: Promise<number | null> } {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: env(), stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
    return { lines, done: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  }

  async function ok(args: readonly string[]): Promise<string> {
    const run = await troupe(args);
    expect(run.code, `troupe ${args.join(' ')}: ${run.stderr}`).toBe(0);
    return run.stdout;
  }

  /** Resolves once the company has printed a line matching `pattern` (it prints every change of a project). */
  async function printed(pattern: RegExp, timeoutMs = 60_000): Promise<void> {
    const running = company as ChildProgram;
    await eventually(
      async () =>
        expect(
          running.lines.some((line) => pattern.test(line)),
          `npm start printed no line like ${pattern}`,
        ).toBe(true),
      timeoutMs,
      50,
    );
  }

  /** Resolves once the developers pool's resource asks for `replicas` and the runtime runs them all. */
  async function developersAt(replicas: number): Promise<void> {
    await eventually(
      async () =>
        expect(JSON.parse(await ok(['get', 'pool', 'developers', '-o', 'json']))).toMatchObject({
          spec: { replicas },
          status: { replicas, readyReplicas: replicas },
        }),
      30_000,
      200,
    );
  }

  /** `npm start`, on the test's data directory and a fixed API port, so the CLI finds it again after a restart. */
  async function start(): Promise<ChildProgram> {
    const child = startChild(MAIN, undefined, {
      env: {
        TROUPE_DATA_DIR: dataDir,
        TROUPE_SAMPLES_DIR: samplesDir,
        TROUPE_API_PORT: String(apiPort),
        TROUPE_PORT: '0',
        TROUPE_GRPC_PORT: '0',
        OPENAI_API_KEY: '',
        ANTHROPIC_API_KEY: '',
        OLLAMA_HOST: 'http://127.0.0.1:1',
      },
    });
    await eventually(async () => expect(child.lines.some((line) => line.startsWith('troupe: dashboard at'))).toBe(true), 90_000, 100).catch(
      (error: unknown) => {
        throw new Error(`npm start did not come up: ${String(error)}\n${child.lines.join('\n')}\n${child.stderr}`);
      },
    );
    return child;
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'troupe-cli-data-'));
    samplesDir = await mkdtemp(join(tmpdir(), 'troupe-cli-samples-'));
    await samples(samplesDir);
    apiPort = await freePort();
    company = await start();
  });
  afterAll(async () => {
    await company?.kill();
    await rm(dataDir, { recursive: true, force: true });
    await rm(samplesDir, { recursive: true, force: true });
  });

  it('shows the sample company in tables and as JSON', async () => {
    expect(company?.lines).toContainEqual(expect.stringContaining('troupe: the CLI (kubeconfig'));
    await eventually(
      async () => {
        const pools = await ok(['get', 'pools']);
        expect(pools.split('\n')[0]).toMatch(/^NAME\s+ROLE\s+MODEL\s+REPLICAS\s+READY\s+BUSY\s+QUEUE\s+AGE$/);
        expect(pools).toMatch(/^developers\s+developer\s+sim-small\s+2\s+2\s+/m);
      },
      30_000,
      200,
    );
    const projects = JSON.parse(await ok(['get', 'projects', '-o', 'json'])) as {
      items: { metadata: { name: string }; spec: { workflow: string } }[];
    };
    expect(projects.items.map((item) => item.metadata.name)).toEqual(['storefront']);
    // Defaulted by the CRD schema on the way in, as the API server defaults it.
    expect(projects.items[0]?.spec.workflow).toBe('software-delivery');
  }, 90_000);

  it('refuses an invalid manifest with exit code 1, naming the field, and sends nothing of the file', async () => {
    const file = join(dataDir, 'mixed.yaml');
    const valid = {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'Project',
      metadata: { name: 'kiosk' },
      spec: { client: 'acme', brief: 'A kiosk app.', budget: { maxCostUSD: 1 } },
    };
    const invalid = {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'AgentPool',
      metadata: { name: 'huge' },
      spec: { role: 'developer', replicas: 5000, model: { provider: 'simulated', name: 'sim-small' } },
    };
    await writeFile(file, `${stringify(valid)}---\n${stringify(invalid)}`);
    const refused = await troupe(['apply', '-f', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      'AgentPool.troupe.dev "huge" is invalid: spec.replicas: Invalid value: 5000: spec.replicas in body should be less than or equal to 1000',
    );
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect((await troupe(['get', 'project', 'kiosk'])).code).toBe(3);
  }, 90_000);

  it('survives a crash while the project waits for approval, approves the gate, and finishes after a crash mid-phase', async () => {
    await printed(/acme\/storefront .* AwaitingApproval +architecture/);
    const waiting = await troupe(['get', 'project', 'storefront', '-w', '--timeout', '2s']);
    expect(waiting.code).toBe(5);
    expect(waiting.stdout).toContain('AwaitingApproval (architecture)');

    await company?.kill();
    company = await start();
    expect(JSON.parse(await ok(['get', 'project', 'storefront', '-o', 'json']))).toMatchObject({
      status: { phase: 'AwaitingApproval', currentPhase: 'architecture' },
    });
    const wrongGate = await troupe(['approve', 'storefront', 'review']);
    expect(wrongGate.code).toBe(1);
    expect(wrongGate.stderr).toContain('spec.approvals is [architecture]');
    expect(await ok(['approve', 'storefront', 'architecture'])).toContain('project.troupe.dev/storefront approved phase architecture');

    // Killed once the work after the gate is under way.
    await printed(/acme\/storefront .* Running +implementation/);
    await company?.kill();
    company = await start();
    const finished = await troupe(['get', 'project', 'storefront', '-w', '--timeout', '120s']);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stdout).toMatch(/storefront +\[█{20}\] 100% +Delivered/);
    expect(await ok(['get', 'projects'])).toMatch(/^storefront\s+acme\s+Delivered\s+100\s+/m);
  }, 240_000);

  it('describes the project and tells its activity feed', async () => {
    const described = await ok(['describe', 'project', 'storefront']);
    expect(described).toMatch(/Phase: +Delivered/);
    expect(described).toMatch(/Artefacts:\n +NAME +KIND +BYTES +SHA256\n +requirements\.md +requirements/);
    expect(described).toMatch(/Normal +Approved +.*approved phase architecture/);
    const feed = await ok(['logs', 'storefront']);
    expect(feed).toMatch(/Submitted +handed generation 1 to the runtime/);
    expect(feed).toMatch(/Delivered +phase Running → Delivered/);
    const json = (await ok(['logs', 'storefront', '-o', 'json']))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { reason: string });
    expect(json.map((event) => event.reason)).toContain('Approved');
  }, 90_000);

  it('waits for a new project to reach its gate, then follows it live from the runtime while a pool is scaled', async () => {
    const file = join(dataDir, 'kiosk.yaml');
    const kiosk = {
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'Project',
      metadata: { name: 'kiosk' },
      spec: { client: 'acme', brief: 'A kiosk app for the shops.', budget: { maxCostUSD: 1 }, approvals: ['architecture'] },
    };
    await writeFile(file, stringify(kiosk));
    const applied = await ok(['apply', '-f', file, '--wait', '--timeout', '90s']);
    expect(applied).toContain('project.troupe.dev/kiosk created\n');
    expect(applied).toContain('project.troupe.dev/kiosk waits for approval of architecture: troupe approve kiosk architecture -n acme');
    const feed = troupeLive(['logs', 'kiosk', '-f']);
    await eventually(
      async () => expect(feed.lines.some((line) => line.startsWith('now: AwaitingApproval (architecture), tasks 2/2'))).toBe(true),
      30_000,
      50,
    );
    await ok(['approve', 'kiosk', 'architecture']);
    expect(await ok(['scale', 'pool', 'developers', '--replicas', '3'])).toBe('agentpool.troupe.dev/developers scaled to 3 replicas\n');
    await developersAt(3);
    expect(await ok(['describe', 'pool', 'developers'])).toContain('scaled the pool in the runtime from 2 to 3 replicas');
    expect(await feed.done).toBe(0);
    expect(feed.lines.join('\n')).toMatch(/task +done: .* \(developer\)/);
    expect(feed.lines.join('\n')).toMatch(/delivered +.*requirements\.md/);
    expect(await ok(['apply', '-f', file])).toBe('project.troupe.dev/kiosk unchanged\n');
  }, 180_000);

  it("scales a pool from the dashboard's Scale: its AgentPool takes the count, and the pool keeps it", async () => {
    const lines = (company as ChildProgram).lines;
    const after = (prefix: string) =>
      lines
        .find((line) => line.startsWith(prefix))
        ?.slice(prefix.length)
        .trim() ?? '';
    const dashboard = after('troupe: dashboard at ');
    const admin = after('troupe:   admin token:');
    const scale = (pool: string, replicas: number) =>
      fetch(`${dashboard}/api/pools/acme/${pool}/scale`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ replicas }),
      });
    expect((await scale('developers', 4)).status).toBe(202);
    await developersAt(4);
    expect(await ok(['describe', 'pool', 'developers'])).toContain('scaled the pool in the runtime from 3 to 4 replicas');
    const missing = await scale('nobody', 2);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { message: 'no AgentPool nobody in namespace acme' } });
  });

  it('deletes a project once its finalizer lets it go', async () => {
    expect(await ok(['delete', 'project', 'kiosk'])).toContain('project.troupe.dev/kiosk deleted');
    const gone = await troupe(['get', 'project', 'kiosk']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain('"kiosk" not found');
  }, 90_000);

  it('exits 2 on usage errors and 4 when the API server cannot be reached', async () => {
    const usage = await troupe(['frobnicate']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('error: unknown command "frobnicate"; run troupe --help\n');
    const help = await troupe(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('5  timed out waiting');
    const nowhere = join(dataDir, 'nowhere.kubeconfig');
    writeKubeconfig(nowhere, { server: `http://127.0.0.1:${await freePort()}`, token: 'x'.repeat(32) });
    const unreachable = await troupe(['get', 'projects', '--kubeconfig', nowhere]);
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toMatch(/^error: cannot reach the API server: .*ECONNREFUSED/);
  }, 90_000);
});
