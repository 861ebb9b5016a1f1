/**
 * `troupe export project NAME -f FILE`: writes the project's archive — the journals of its
 * actors, its artefacts and its ledger entries, from the runtime's ExportProject — to FILE
 * (archive-file.ts), showing the progress of a big one on stderr. `troupe import` restores it.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { RuntimeCallError } from '../clients/runtime.grpc.js';
import { phaseOf } from '../controllers/project.mapping.js';
import { writeArchive, withProgress } from './archive-file.js';
import { type CliContext, runtimeClient } from './context.js';
import { CliError, ExitCode, usage } from './exit-codes.js';
import { snapshotLine } from './project-view.js';

export interface ExportOptions {
  kind: string;
  name: string;
  /** Where the archive goes; a file there is replaced once the archive is whole. */
  file: string;
  json: boolean;
  /** Where progress goes (stderr). */
  progress: NodeJS.WritableStream & { isTTY?: boolean };
}

export async function exportProject(context: CliContext, options: ExportOptions): Promise<ExitCode> {
  if (context.catalog.named(options.kind).type.kind !== 'Project') throw usage(`only projects are exported, not ${options.kind}`);
  const runtime = runtimeClient(context);
  const key = `${context.namespace}/${options.name}`;
  try {
    const parts = withProgress(runtime.exportProject(context.namespace, options.name), 'exporting', options.progress);
    const { header, fileBytes } = await writeArchive(options.file, parts);
    const summary = {
      namespace: context.namespace,
      name: options.name,
      file: options.file,
      phase: header.status === undefined ? undefined : phaseOf(header.status),
      journals: header.journals,
      artifacts: header.artifacts,
      artifactBytes: header.artifactBytes,
      ledgerEntries: header.ledgerEntries,
      fileBytes,
    };
    if (options.json) context.out.write(`${JSON.stringify(summary, null, 2)}\n`);
    else {
      context.out.write(
        `project ${key} exported to ${options.file}: ${summary.journals} journals, ${summary.artifacts} artefacts ` +
          `(${summary.artifactBytes} bytes), ${summary.ledgerEntries} ledger entries; ${header.status === undefined ? '' : snapshotLine(header.status)}\n`,
      );
    }
    return ExitCode.Ok;
  } catch (error) {
    if (error instanceof RuntimeCallError && error.grpcCode === GrpcStatus.NOT_FOUND)
      throw new CliError(ExitCode.NotFound, `project ${key} not found in the runtime`, { cause: error });
    throw error;
  } finally {
    runtime.close();
  }
}
