/**
 * Secrets from files, laid out as Kubernetes mounts a Secret: `<dir>/<namespace>/<name>/<key>`,
 * one file per key (a trailing newline, as `echo` leaves, is not part of the value). Each value
 * read is registered for redaction, so it never reaches a log. The embedded runtime reads
 * webhook and git credentials from here (the data directory's `secrets/`, or
 * `TROUPE_SECRETS_DIR`); a node can read Secret volumes the same way.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { registerSecret } from '../../security/redact.js';
import type { SecretSource } from './delivery.types.js';

/** Namespaces are DNS labels; Secret names DNS subdomains: neither can climb out of `dir`. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * @example
 * // <dataDir>/secrets/acme/hooks/secret holds the signing key of the Secret acme/hooks
 * const secrets = new FileSecrets(join(dataDir, 'secrets'));
 * (await secrets.get('acme', 'hooks'))?.secret;
 */
export class FileSecrets implements SecretSource {
  constructor(private readonly dir: string) {}

  async get(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    if (!NAMESPACE.test(namespace) || !NAME.test(name) || name.includes('..')) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidArgument,
        `Secret ${JSON.stringify(`${namespace}/${name}`)} is not a namespace and a Secret name`,
      );
    }
    const folder = join(this.dir, namespace, name);
    let keys: string[];
    try {
      keys = await readdir(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const data: Record<string, string> = {};
    // Mounted volumes keep their real files under `..data`; the keys are the names without dots in front.
    for (const key of keys.filter((entry) => !entry.startsWith('.'))) {
      data[key] = (await readFile(join(folder, key), 'utf8')).replace(/\r?\n$/, '');
      registerSecret(data[key]);
    }
    return data;
  }
}
