/**
 * Artefacts as a node stores and another reads them: bytes in files under a shared directory,
 * records in the Store's catalog — SQLite embedded, the real Cassandra distributed. Any node can
 * list a project's artefacts and read them verified; bytes that no longer hash to what was
 * recorded are refused with an error naming the artefact; a node without a store reads by ref.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { infra } from '@troupe/harness';
import { afterAll, describe, expect, it } from 'vitest';
import { RuntimeErrorCode } from '../errors.js';
import { openStore, type StoreConfig } from '../store/open.js';
import type { Store } from '../store/store.js';
import { BlobArtifactStore, FileBlobStore, type BlobStore } from './artifacts.js';

/** Kept across runs; each run writes under a namespace of its own. */
const KEYSPACE = 'troupe_artifacts_test';

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');
const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8'));

const stores: [string, (dir: string) => StoreConfig][] = [
  ['embedded', (dir) => ({ kind: 'embedded', path: join(dir, 'state.db') })],
  ['cassandra', () => ({ kind: 'cassandra', ...infra().cassandra, keyspace: KEYSPACE })],
];

describe('BlobArtifactStore options', () => {
  it('refuses options that are not what they must be, naming them', () => {
    expect(() => new BlobArtifactStore({ blobs: {} as BlobStore })).toThrow(
      'BlobArtifactStore option blobs must be a BlobStore (put and get)',
    );
    expect(() => new BlobArtifactStore({ blobs: new FileBlobStore(tmpdir()), clock: 5 as unknown as () => number })).toThrow(
      'BlobArtifactStore option clock must be a function returning unix ms',
    );
  });
});

describe.each(stores)('artefacts over the %s store', (_kind, config) => {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-artifacts-'));
  const blobsDir = join(dir, 'artifacts');
  const namespace = `t-${randomUUID().slice(0, 8)}`;
  const opened: Store[] = [];
  /** A node of its own: its own store connection, the shared blob directory. */
  const node = async (clock?: () => number) => {
    const store = await openStore(config(dir));
    opened.push(store);
    return new BlobArtifactStore({ blobs: new FileBlobStore(blobsDir), catalog: store, ...(clock === undefined ? {} : { clock }) });
  };

  afterAll(async () => {
    for (const store of opened) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores an artefact on one node that another lists and reads, verified', async () => {
    const writer = await node(() => 1_700_000_000_000);
    const cart = 'export const cart = [];\n';
    const ref = await writer.put(namespace, 'shop', 'src/cart.ts', 'code', Buffer.from(cart));
    await writer.put(namespace, 'shop', 'README.md', 'docs', Buffer.from('# Shop\n'));
    expect(ref).toEqual({
      name: 'src/cart.ts',
      kind: 'code',
      uri: `troupe://artifacts/${namespace}/shop/src/cart.ts`,
      sha256: sha256(cart),
      bytes: Buffer.byteLength(cart),
    });

    const reader = await node();
    expect(await reader.list(namespace, 'shop')).toEqual([
      expect.objectContaining({ name: 'README.md', kind: 'docs', sha256: sha256('# Shop\n') }),
      { namespace, project: 'shop', ...ref, storedAt: 1_700_000_000_000 },
    ]);
    expect(text(await reader.get(namespace, 'shop', 'src/cart.ts'))).toBe(cart);
    expect(text(await reader.read(namespace, 'shop', ref))).toBe(cart);
    expect(await reader.get(namespace, 'shop', 'src/none.ts')).toBeUndefined();
    expect(await reader.list(namespace, 'empty')).toEqual([]);
  });

  it('refuses bytes that no longer hash to the recorded sha256, naming the artefact', async () => {
    const artifacts = await node();
    const ref = await artifacts.put(namespace, 'tampered', 'src/index.ts', 'code', Buffer.from('console.log("ok");\n'));
    // Someone edits the file on the shared volume.
    writeFileSync(join(blobsDir, namespace, 'tampered', ref.sha256), 'console.log("pwned");\n');

    const other = await node();
    await expect(other.get(namespace, 'tampered', 'src/index.ts')).rejects.toMatchObject({
      code: RuntimeErrorCode.Corrupt,
      message: expect.stringMatching(
        new RegExp(
          `^artefact src/index\\.ts of project ${namespace}/tampered is corrupt: its bytes hash to sha256 [a-f0-9]{64}, not the recorded ${ref.sha256}$`,
        ),
      ),
    });
    await expect(other.read(namespace, 'tampered', ref)).rejects.toThrow(/artefact src\/index\.ts of project .* is corrupt/);
  });

  it('refuses a recorded artefact whose bytes are gone', async () => {
    const artifacts = await node();
    const ref = await artifacts.put(namespace, 'lost', 'architecture.md', 'architecture', Buffer.from('# Design\n'));
    rmSync(join(blobsDir, namespace, 'lost', ref.sha256));

    await expect(artifacts.get(namespace, 'lost', 'architecture.md')).rejects.toThrow(
      `artefact architecture.md of project ${namespace}/lost is recorded (sha256 ${ref.sha256}) but its bytes are missing from the blob store`,
    );
  });

  it('keeps the bytes of an earlier version readable when a name is written again', async () => {
    const artifacts = await node();
    const first = await artifacts.put(namespace, 'loop', 'src/app.ts', 'code', Buffer.from('v1\n'));
    const second = await artifacts.put(namespace, 'loop', 'src/app.ts', 'code', Buffer.from('v2\n'));

    expect(text(await artifacts.get(namespace, 'loop', 'src/app.ts'))).toBe('v2\n');
    expect(await artifacts.list(namespace, 'loop')).toEqual([expect.objectContaining({ name: 'src/app.ts', sha256: second.sha256 })]);
    // A reader that took the first version's ref a moment earlier still gets exactly those bytes.
    expect(text(await artifacts.read(namespace, 'loop', first))).toBe('v1\n');
  });

  it('refuses names and projects that would leave the project’s directory', async () => {
    const artifacts = await node();
    for (const name of ['../escape.ts', '/etc/passwd', 'src/../../x', '']) {
      await expect(artifacts.put(namespace, 'shop', name, 'code', Buffer.from('x')), name).rejects.toMatchObject({
        code: RuntimeErrorCode.InvalidArgument,
      });
    }
    await expect(artifacts.put('..', 'shop', 'a.ts', 'code', Buffer.from('x'))).rejects.toThrow('namespace ".." is not a DNS label');
    await expect(artifacts.put(namespace, 'a/b', 'a.ts', 'code', Buffer.from('x'))).rejects.toThrow(
      'project name "a/b" is not a DNS subdomain',
    );
  });

  it('reads by ref on a node without a store, and refuses there what needs the catalog', async () => {
    const ref = await (await node()).put(namespace, 'gateway', 'docs/guide.md', 'docs', Buffer.from('# Guide\n'));
    const gateway = new BlobArtifactStore({ blobs: new FileBlobStore(blobsDir) });

    expect(text(await gateway.read(namespace, 'gateway', ref))).toBe('# Guide\n');
    await expect(gateway.list(namespace, 'gateway')).rejects.toMatchObject({
      code: RuntimeErrorCode.Unavailable,
      message: expect.stringContaining('this node keeps no artefact catalog'),
    });
    await expect(gateway.put(namespace, 'gateway', 'b.md', 'docs', Buffer.from('b'))).rejects.toThrow(/cannot store b\.md/);
  });
});
