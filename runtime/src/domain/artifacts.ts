/**
 * Where deliverables live: their bytes in an object-store-style blob store (a filesystem
 * implementation under the data directory or a shared volume), and what each artefact is — its
 * project, name, kind, sha256, size and when it was stored — in the Store's artefact catalog
 * (SQLite embedded, Cassandra distributed), so any node can list a project's artefacts. Blobs are
 * addressed by their sha256, so a rewritten artefact never changes bytes a reader is verifying,
 * and every read checks the bytes against the sha256 it expects.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { withDefaults } from '../llm/options.js';
import type { ArtifactRecord, Store } from '../store/store.js';
import type { ArtifactRef } from './project.types.js';

/** An object store: immutable bytes under slash-separated keys. */
export interface BlobStore {
  /** Stores `content` under `key`, atomically: a reader sees the old bytes or the new, never part of them. */
  put(key: string, content: Uint8Array): Promise<void>;
  /** The bytes under `key`, or undefined when there are none. */
  get(key: string): Promise<Uint8Array | undefined>;
}

/** The Store's artefact catalog. */
export type ArtifactCatalog = Pick<Store, 'putArtifact' | 'getArtifact' | 'listArtifacts'>;

export interface ArtifactStore {
  /** Stores an artefact's bytes, then records it in the catalog; answers the ref the project's status lists. */
  put(namespace: string, project: string, name: string, kind: string, content: Uint8Array): Promise<ArtifactRef>;
  /** The bytes of the artefact the catalog records under `name`, checked against its sha256; undefined when none is recorded. */
  get(namespace: string, project: string, name: string): Promise<Uint8Array | undefined>;
  /**
   * The bytes of the artefact `ref` names (e.g. from a project's status), checked against
   * `ref.sha256`; needs no catalog.
   */
  read(namespace: string, project: string, ref: Pick<ArtifactRef, 'name' | 'sha256'>): Promise<Uint8Array | undefined>;
  /** What the catalog records of a project's artefacts, by name. */
  list(namespace: string, project: string): Promise<ArtifactRecord[]>;
}

/** Namespaces are DNS labels, project names DNS subdomains: neither can climb out of a directory. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const PROJECT = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const SHA256 = /^[a-f0-9]{64}$/;

/** Artefact names are relative paths like `src/cart.ts`: no absolute paths, no way out of the project. */
export function checkArtifactName(name: string): void {
  const normal = normalize(name);
  if (name === '' || name.startsWith('/') || normal.startsWith('..') || normal !== name || name.length > 200) {
    throw new RuntimeError(
      RuntimeErrorCode.InvalidArgument,
      `artifact name ${JSON.stringify(name)} must be a relative path inside the project`,
    );
  }
}

/**
 * A BlobStore of files under a directory, one file per key; writes go to a scratch file first
 * and are renamed into place.
 *
 * @example
 * const blobs = new FileBlobStore(join(dataDir, 'artifacts'));
 * await blobs.put('acme/shop/3f2a…', bytes);
 */
export class FileBlobStore implements BlobStore {
  constructor(private readonly dir: string) {}

  async put(key: string, content: Uint8Array): Promise<void> {
    const file = this.file(key);
    await mkdir(dirname(file), { recursive: true });
    const scratch = `${file}.${randomUUID()}.tmp`;
    await writeFile(scratch, content);
    await rename(scratch, file);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.file(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private file(key: string): string {
    const segments = key.split('/');
    if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) {
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `blob key ${JSON.stringify(key)} must be a relative path without . or ..`);
    }
    return join(this.dir, ...segments);
  }
}

/** Options of {@link BlobArtifactStore}. */
export interface BlobArtifactStoreOptions {
  /** Where the bytes are kept (required). */
  blobs: BlobStore;
  /** Where artefacts are recorded: the node's Store. Without one only `read` works. */
  catalog?: ArtifactCatalog;
  /** Stamps each record's `storedAt`. Default `Date.now`. */
  clock: () => number;
}

export const BLOB_ARTIFACT_STORE_DEFAULTS = { clock: Date.now } as const satisfies Partial<BlobArtifactStoreOptions>;

/**
 * The ArtifactStore over a blob store and the Store's catalog. An artefact's bytes are kept under
 * `<namespace>/<project>/<sha256>`; its record, under its name. Without a catalog (a node that
 * keeps no Store, such as a gateway) it only `read`s artefacts by ref; `put`, `get` and `list`
 * fail with UNAVAILABLE.
 *
 * @example
 * const artifacts = new BlobArtifactStore({ blobs: new FileBlobStore(join(dataDir, 'artifacts')), catalog: store });
 * const ref = await artifacts.put('acme', 'shop', 'src/cart.ts', 'code', bytes);
 * await artifacts.get('acme', 'shop', 'src/cart.ts'); // the bytes, or CORRUPT if they no longer hash to ref.sha256
 */
export class BlobArtifactStore implements ArtifactStore {
  private readonly options: BlobArtifactStoreOptions;

  constructor(options: Pick<BlobArtifactStoreOptions, 'blobs'> & Partial<BlobArtifactStoreOptions>) {
    this.options = withDefaults(BLOB_ARTIFACT_STORE_DEFAULTS, options);
    if (typeof this.options.blobs?.put !== 'function' || typeof this.options.blobs.get !== 'function') {
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, 'BlobArtifactStore option blobs must be a BlobStore (put and get)');
    }
    if (typeof this.options.clock !== 'function') {
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, 'BlobArtifactStore option clock must be a function returning unix ms');
    }
  }

  async put(namespace: string, project: string, name: string, kind: string, content: Uint8Array): Promise<ArtifactRef> {
    checkArtifactName(name);
    const catalog = this.catalogFor('store', name);
    const sha256 = createHash('sha256').update(content).digest('hex');
    // The bytes first: a record never names bytes that are not there.
    await this.options.blobs.put(blobKey(namespace, project, sha256), content);
    const ref: ArtifactRef = { name, kind, uri: `troupe://artifacts/${namespace}/${project}/${name}`, sha256, bytes: content.byteLength };
    await catalog.putArtifact({ namespace, project, ...ref, storedAt: this.options.clock() });
    return ref;
  }

  async get(namespace: string, project: string, name: string): Promise<Uint8Array | undefined> {
    checkArtifactName(name);
    const record = await this.catalogFor('read', name).getArtifact(namespace, project, name);
    if (record === undefined) return undefined;
    const bytes = await this.read(namespace, project, record);
    if (bytes === undefined) {
      throw new RuntimeError(
        RuntimeErrorCode.Corrupt,
        `artefact ${name} of project ${namespace}/${project} is recorded (sha256 ${record.sha256}) but its bytes are missing from the blob store`,
      );
    }
    return bytes;
  }

  async read(namespace: string, project: string, ref: Pick<ArtifactRef, 'name' | 'sha256'>): Promise<Uint8Array | undefined> {
    if (!SHA256.test(ref.sha256)) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidArgument,
        `artefact ${ref.name}: sha256 ${JSON.stringify(ref.sha256)} is not 64 hex digits`,
      );
    }
    const bytes = await this.options.blobs.get(blobKey(namespace, project, ref.sha256));
    if (bytes === undefined) return undefined;
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== ref.sha256) {
      throw new RuntimeError(
        RuntimeErrorCode.Corrupt,
        `artefact ${ref.name} of project ${namespace}/${project} is corrupt: its bytes hash to sha256 ${actual}, not the recorded ${ref.sha256}`,
      );
    }
    return bytes;
  }

  async list(namespace: string, project: string): Promise<ArtifactRecord[]> {
    return this.catalogFor('list', `the artefacts of ${namespace}/${project}`).listArtifacts(namespace, project);
  }

  private catalogFor(action: string, what: string): ArtifactCatalog {
    const { catalog } = this.options;
    if (catalog === undefined) {
      throw new RuntimeError(
        RuntimeErrorCode.Unavailable,
        `cannot ${action} ${what}: this node keeps no artefact catalog (it has no store); only artefacts named by their sha256 can be read here`,
      );
    }
    return catalog;
  }
}

/** Where an artefact's bytes are kept: by content, so rewriting a name never touches bytes already recorded. */
function blobKey(namespace: string, project: string, sha256: string): string {
  if (!NAMESPACE.test(namespace)) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `namespace "${namespace}" is not a DNS label`);
  if (!PROJECT.test(project)) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `project name "${project}" is not a DNS subdomain`);
  return `${namespace}/${project}/${sha256}`;
}
