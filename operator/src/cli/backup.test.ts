/**
 * `troupe export` and `troupe import` as a user runs them, between two embedded runtimes serving
 * gRPC: a project run to delivery in one is exported to a file and imported into the other,
 * where its status, artefacts (bytes and sha256), ledger totals and journals are what they were;
 * a tampered file, one of an unknown format version, one that is no archive and a project that
 * exists are refused with exit code 1, and nothing is stored.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProjectPhase, type ActorJournal, type ArchivePart } from '@troupe/proto';
import { SimulatedServer, Tokens, createProvider, startEmbeddedRuntime, type EmbeddedRuntime } from '@troupe/runtime';
import { SIM_PRICES, eventually, samplePools, submitCommand } from '@troupe/runtime/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeKubeconfig } from '../embedded/kubeconfig.js';
import { readArchive, writeArchive } from './archive-file.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'operator/bin/troupe.mjs');

/** The kubeconfig alone says where the runtime is and what token to send. */
const ENV = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => key !== 'TROUPE_RUNTIME_ADDRESS' && key !== 'TROUPE_RUNTIME_TOKEN'),
);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI binary against the runtime `kubeconfig` points at; never throws on a non-zero exit. */
function troupe(kubeconfig: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args, '--kubeconfig', kubeconfig],
      { cwd: ROOT, env: ENV, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}

async function parts(file: string): Promise<ArchivePart[]> {
  const all: ArchivePart[] = [];
  for await (const part of readArchive(file)) all.push(part);
  return all;
}

function journals(all: readonly ArchivePart[]): ActorJournal[] {
  return all.flatMap((part) => (part.part?.$case === 'journal' ? [part.part.value] : []));
}

async function* each(all: readonly ArchivePart[]): AsyncGenerator<ArchivePart> {
  yield* all;
}

describe('troupe export and import', () => {
  const tokens = new Tokens({ secret: 'backup-test-secret-of-at-least-32-bytes!' });
  let dir = '';
  let server: SimulatedServer;
  let source: EmbeddedRuntime;
  let target: EmbeddedRuntime;
  /** Kubeconfigs of the two runtimes, as `npm start` writes them. */
  let from = '';
  let to = '';
  let file = '';

  async function runtime(name: string): Promise<{ runtime: EmbeddedRuntime; kubeconfig: string }> {
    const started = await startEmbeddedRuntime({
      dataDir: join(dir, name),
      providers: [createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL, pricing: SIM_PRICES })],
      pools: samplePools('acme'),
      grpc: { port: 0, tokens },
    });
    const kubeconfig = join(dir, `${name}.kubeconfig`);
    writeKubeconfig(kubeconfig, {
      // No command here talks to the resource API.
      server: 'http://127.0.0.1:1',
      token: 'unused',
      runtimeAddress: started.grpcAddress,
      runtimeToken: tokens.sign({ sub: 'backup-test', role: 'admin' }),
      namespace: 'acme',
    });
    return { runtime: started, kubeconfig };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'troupe-cli-backup-'));
    file = join(dir, 'storefront.troupe');
    server = await SimulatedServer.start({ latencyMs: 20, tokensPerSecond: Infinity, seed: 9 });
    ({ runtime: source, kubeconfig: from } = await runtime('source'));
    ({ runtime: target, kubeconfig: to } = await runtime('target'));
    await source.company.submitProject('submit-1', submitCommand('acme', 'storefront'));
    await eventually(async () => {
      expect((await source.company.getProject('acme', 'storefront'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 60_000);
  }, 90_000);

  afterAll(async () => {
    await source?.stop();
    await target?.stop();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('exports a delivered project to a file and imports it into another runtime as it was', async () => {
    const exported = await troupe(from, ['export', 'project', 'storefront', '-f', file]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toMatch(
      /^project acme\/storefront exported to \S+storefront\.troupe: \d+ journals, \d+ artefacts \(\d+ bytes\), \d+ ledger entries; now: Delivered/,
    );

    const imported = await troupe(to, ['import', '-f', file, '-o', 'json']);
    expect(imported.code, imported.stderr).toBe(0);
    const before = await source.company.getProject('acme', 'storefront');
    const status = before?.status;
    expect(JSON.parse(imported.stdout)).toMatchObject({
      namespace: 'acme',
      name: 'storefront',
      phase: 'Delivered',
      artifacts: status?.artifacts.length,
    });
    expect(await target.company.getProject('acme', 'storefront')).toEqual(before);

    expect(status?.artifacts.length).toBeGreaterThan(3);
    for (const artifact of status?.artifacts ?? []) {
      const copy = await target.company.artifact('acme', 'storefront', artifact.name);
      const original = await source.company.artifact('acme', 'storefront', artifact.name);
      expect(Buffer.from(copy?.bytes ?? []).equals(Buffer.from(original?.bytes ?? [0])), artifact.name).toBe(true);
      expect(
        createHash('sha256')
          .update(copy?.bytes ?? new Uint8Array())
          .digest('hex'),
        artifact.name,
      ).toBe(artifact.sha256);
    }
    const totals = await source.ledger.totals({ client: 'acme', project: 'acme/storefront' });
    expect(totals.calls).toBeGreaterThan(0);
    expect(await target.ledger.totals({ client: 'acme', project: 'acme/storefront' })).toEqual(totals);

    // Exported again from where it landed, it holds the same journals: the same events after the same snapshot.
    const again = join(dir, 'again.troupe');
    expect((await troupe(to, ['export', 'project', 'storefront', '-f', again])).code).toBe(0);
    const originals = journals(await parts(file));
    const copies = journals(await parts(again));
    expect(copies.length).toBe(originals.length);
    for (const [i, original] of originals.entries()) {
      const copy = copies[i] as ActorJournal;
      expect(`${copy.actorType}/${copy.actorId}`).toBe(`${original.actorType}/${original.actorId}`);
      expect(copy.events).toEqual(original.events);
      expect(copy.snapshot?.state).toEqual(original.snapshot?.state);
      expect(copy.seq).toBe(original.seq - (original.snapshot?.seq ?? 0));
    }
  }, 60_000);

  it('refuses a project that exists, a tampered file, an unknown version and a file that is no archive, storing nothing', async () => {
    const archive = await parts(file);
    const again = await troupe(to, ['import', '-f', file]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toMatch(/^error: .*project acme\/storefront already exists in this runtime/);

    const dataAt = archive.findIndex((part) => part.part?.$case === 'artifactData');
    const flipped = archive.map((part, i) =>
      i === dataAt && part.part?.$case === 'artifactData'
        ? { part: { ...part.part, value: Buffer.from(part.part.value.map((byte, at) => (at === 0 ? byte ^ 0xff : byte))) } }
        : part,
    );
    const tamperedFile = join(dir, 'tampered.troupe');
    await writeArchive(tamperedFile, each(flipped));
    const versioned = archive.map((part) =>
      part.part?.$case === 'header' ? { part: { $case: 'header' as const, value: { ...part.part.value, formatVersion: 9 } } } : part,
    );
    const versionFile = join(dir, 'version-9.troupe');
    await writeArchive(versionFile, each(versioned));
    const textFile = join(dir, 'notes.troupe');
    await writeFile(textFile, 'not an archive');

    const refusals: [string, RegExp][] = [
      [
        tamperedFile,
        /^error: .*the archive is corrupt: sha256 mismatch of artefact \S+: the archive says [0-9a-f]{64}, its bytes hash to [0-9a-f]{64}$/,
      ],
      [versionFile, /^error: .*the archive's format version 9 is not supported: this runtime reads version 1$/],
      [textFile, /^error: \S+notes\.troupe is not a troupe archive, or is damaged: /],
    ];
    for (const [refused, message] of refusals) {
      // Into a namespace where nothing is yet, so that only the archive can be the problem.
      const run = await troupe(to, ['import', '-f', refused, '-n', 'initech']);
      expect(run.code, refused).toBe(1);
      expect(run.stderr.trim(), refused).toMatch(message);
      expect(await target.company.getProject('initech', 'storefront'), refused).toBeUndefined();
      expect(await target.company.artifact('initech', 'storefront', 'README.md'), refused).toBeUndefined();
    }

    // Moved by -n, the same archive is welcome.
    const moved = await troupe(to, ['import', '-f', file, '-n', 'initech']);
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toMatch(/^project initech\/storefront imported from \S+: /);
    expect((await target.company.getProject('initech', 'storefront'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
  }, 90_000);

  it('exits 3 for a project the runtime does not know, and 2 on usage errors', async () => {
    const missing = await troupe(from, ['export', 'project', 'nothing', '-f', join(dir, 'nothing.troupe')]);
    expect([missing.code, missing.stderr.trim()]).toEqual([3, 'error: project acme/nothing not found in the runtime']);
    expect(existsSync(join(dir, 'nothing.troupe'))).toBe(false);
    expect((await troupe(from, ['export', 'project', 'storefront'])).code).toBe(2);
    expect((await troupe(from, ['export', 'pool', 'developers', '-f', file])).code).toBe(2);
    expect((await troupe(to, ['import'])).code).toBe(2);
  }, 60_000);
});
