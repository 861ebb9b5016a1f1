/**
 * The files of `troupe export` and `troupe import`: a project's archive (proto backup.proto) as
 * its ArchiveParts, each size-delimited, gzipped. An export is written to a temporary file that
 * is renamed into place, so a failed one leaves no half file. Big archives show their progress
 * on stderr as their artefacts' bytes go by.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { ArchivePart, readSizeDelimited, sizeDelimited, type ArchiveHeader } from '@troupe/proto';
import { CliError, ExitCode } from './exit-codes.js';

/** The largest part a reader takes: artefact data comes in pieces far smaller. */
const MAX_PART_BYTES = 64 << 20;

/** Below this many artefact bytes an archive is small, and shows no progress. */
const BIG_ARCHIVE_BYTES = 1 << 20;

/** What a written archive holds. */
export interface WrittenArchive {
  header: ArchiveHeader;
  /** The file's size, compressed. */
  fileBytes: number;
}

/** Writes `parts` to `path`, whole or not at all; resolves with the archive's header. */
export async function writeArchive(path: string, parts: AsyncIterable<ArchivePart>): Promise<WrittenArchive> {
  let header: ArchiveHeader | undefined;
  async function* framed(): AsyncGenerator<Uint8Array> {
    for await (const part of parts) {
      if (part.part?.$case === 'header') header = part.part.value;
      yield sizeDelimited(ArchivePart.encode(part).finish());
    }
  }
  const scratch = `${path}.${process.pid}.tmp`;
  const file = createWriteStream(scratch);
  try {
    await pipeline(Readable.from(framed()), createGzip(), file);
    if (header === undefined) throw new CliError(ExitCode.Refused, 'the runtime sent an archive without a header');
    await rename(scratch, path);
  } catch (error) {
    await rm(scratch, { force: true });
    throw error;
  }
  return { header, fileBytes: file.bytesWritten };
}

/** The parts of the archive file at `path`; refuses (exit 1) a file that is missing or is no archive. */
export async function* readArchive(path: string): AsyncGenerator<ArchivePart> {
  const file = createReadStream(path);
  try {
    await once(file, 'open');
  } catch (error) {
    throw new CliError(ExitCode.Refused, `cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    for await (const bytes of readSizeDelimited(file.pipe(createGunzip()), MAX_PART_BYTES)) yield ArchivePart.decode(bytes);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(ExitCode.Refused, `${path} is not a troupe archive, or is damaged: ${(error as Error).message}`);
  } finally {
    file.destroy();
  }
}

/**
 * Passes `parts` through, telling `out` how far their artefact bytes have got when the archive
 * is big: one line that rewrites itself on a terminal, else a line per tenth.
 */
export async function* withProgress(
  parts: AsyncIterable<ArchivePart>,
  doing: string,
  out: NodeJS.WritableStream & { isTTY?: boolean },
): AsyncGenerator<ArchivePart> {
  let total = 0;
  let done = 0;
  let shown = -1;
  let label = '';
  for await (const part of parts) {
    const body = part.part;
    if (body?.$case === 'header') {
      total = body.value.artifactBytes;
      label = `${doing} ${body.value.project?.namespace ?? ''}/${body.value.project?.name ?? ''}`;
    } else if (body?.$case === 'artifactData' && total >= BIG_ARCHIVE_BYTES) {
      done += body.value.byteLength;
      const percent = Math.min(100, Math.floor((100 * done) / total));
      const step = out.isTTY === true ? percent : Math.floor(percent / 10) * 10;
      if (step !== shown) {
        shown = step;
        const line = `${label}: ${mebibytes(done)} of ${mebibytes(total)} MiB of artefacts (${percent}%)`;
        out.write(out.isTTY === true ? `\r${line}` : `${line}\n`);
      }
    } else if (body?.$case === 'trailer' && shown >= 0 && out.isTTY === true) {
      out.write('\n');
    }
    yield part;
  }
}

function mebibytes(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(1);
}
