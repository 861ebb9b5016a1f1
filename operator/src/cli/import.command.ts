/**
 * `troupe import -f FILE [-n NS]`: restores the project an archive of `troupe export` holds into
 * the runtime (ImportProject), in its own namespace or in NS, showing the progress of a big one
 * on stderr. The runtime checks the whole archive before it stores anything, and refuses (exit
 * 1) one of an unknown format version, a corrupt or cut-short one, and a project that exists.
 * The Project resource is not created: apply it afterwards to have the operator follow the
 * project, and the runtime takes it as an update of the restored one.
 */
import { phaseOf } from '../controllers/project.mapping.js';
import { readArchive, withProgress } from './archive-file.js';
import { type CliContext, runtimeClient } from './context.js';
import { ExitCode } from './exit-codes.js';
import { snapshotLine } from './project-view.js';

export interface ImportOptions {
  file: string;
  /** Restore into this namespace rather than the archive's. */
  namespace: string | undefined;
  json: boolean;
  /** Where progress goes (stderr). */
  progress: NodeJS.WritableStream & { isTTY?: boolean };
}

export async function importProject(context: CliContext, options: ImportOptions): Promise<ExitCode> {
  const runtime = runtimeClient(context);
  try {
    const response = await runtime.importProject(withProgress(readArchive(options.file), 'importing', options.progress), options.namespace);
    const project = response.project;
    const key = `${project?.namespace ?? ''}/${project?.name ?? ''}`;
    if (options.json) {
      const { journals, artifacts, artifactBytes, ledgerEntries } = response;
      const phase = project?.status === undefined ? undefined : phaseOf(project.status);
      context.out.write(
        `${JSON.stringify({ namespace: project?.namespace, name: project?.name, phase, journals, artifacts, artifactBytes, ledgerEntries }, null, 2)}\n`,
      );
    } else {
      context.out.write(
        `project ${key} imported from ${options.file}: ${response.journals} journals, ${response.artifacts} artefacts ` +
          `(${response.artifactBytes} bytes), ${response.ledgerEntries} ledger entries; ${project?.status === undefined ? '' : snapshotLine(project.status)}\n`,
      );
    }
    return ExitCode.Ok;
  } finally {
    runtime.close();
  }
}
