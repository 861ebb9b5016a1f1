/**
 * Where deliverables live: an object-store-style interface, and its filesystem implementation
 * under the data directory. Each artefact is addressed by project and name and stored with its
 * sha256 and size; writes are atomic, so a reader never sees half a file.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import type { ArtifactRef } from './project.types.js';

export interface ArtifactStore {
  put(namespace: string, project: string, name: string, kind: string, content: Uint8Array): Promise<ArtifactRef>;
  get(namespace: string, project: string, name: string): Promise<Uint8Array | undefined>;
}

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

export class FileArtifactStore implements ArtifactStore {
  constructor(private readonly dir: string) {}

  async put(namespace: string, project: string, name: string, kind: string, content: Uint8Array): Promise<ArtifactRef> {
    checkArtifactName(name);
    const file = this.file(namespace, project, name);
    await mkdir(dirname(file), { recursive: true });
    const scratch = `${file}.${randomUUID()}.tmp`;
    await writeFile(scratch, content);
    await rename(scratch, file);
    return {
      name,
      kind,
      uri: `troupe://artifacts/${namespace}/${project}/${name}`,
      sha256: createHash('sha256').update(content).digest('hex'),
      bytes: content.byteLength,
    };
  }

  async get(namespace: string, project: string, name: string): Promise<Uint8Array | undefined> {
    checkArtifactName(name);
    try {
      return await readFile(this.file(namespace, project, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private file(namespace: string, project: string, name: string): string {
    return join(this.dir, namespace, project, name);
  }
}
