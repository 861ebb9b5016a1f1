/** What every server module gives the harness: where it listens and which processes to stop. */
export interface Started<E> {
  endpoint: E;
  pids: number[];
  /**
   * Starts the server again on the same ports, config and data, once its processes were
   * stopped; resolves with the new pids when it answers. Absent for servers with no process.
   */
  relaunch?: () => Promise<number[]>;
}

/** Per-run settings handed to each server module. */
export interface ServerContext {
  /** Machine-wide cache of built artefacts, keyed by version (e.g. ~/.cache/troupe). */
  cacheDir: string;
  /** This run's scratch folder: configs, data and logs of the servers. */
  runDir: string;
  /** The repository root, for files such as crds/. */
  repoRoot: string;
}
