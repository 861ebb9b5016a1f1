/**
 * The project archive (proto/troupe/v1/backup.proto) as the runtime writes and checks it: the
 * format version it speaks, the running digest an archive's trailer records, and the receiver
 * that takes an archive's parts in order and checks each against the format — version, order,
 * artefact sizes and sha256, counts, the trailer's digest — before anything is stored.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  ArchivePart,
  sizeDelimited,
  type ActorJournal,
  type ArchiveHeader,
  type Artifact,
  type LedgerEntry,
  type SubmitProject,
} from '@troupe/proto';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';

/** The archive format this runtime writes, and the only one it reads. */
export const ARCHIVE_FORMAT_VERSION = 1;

/** The running sha256 of an archive's parts, as its trailer records it. */
export class ArchiveDigest {
  private readonly hash: Hash = createHash('sha256');
  private count = 0;

  /** Adds the next part; returns its size as the archive holds it. */
  add(part: ArchivePart): number {
    const framed = sizeDelimited(ArchivePart.encode(part).finish());
    this.hash.update(framed);
    this.count += 1;
    return framed.byteLength;
  }

  /** How many parts were added. */
  get parts(): number {
    return this.count;
  }

  hex(): string {
    return this.hash.copy().digest('hex');
  }
}

/** An archive taken in whole, every check passed. */
export interface ReceivedArchive {
  header: ArchiveHeader & { project: SubmitProject };
  journals: ActorJournal[];
  artifacts: { artifact: Artifact; bytes: Buffer }[];
  ledger: LedgerEntry[];
  /** The trailer's sha256, which names this archive. */
  sha256: string;
}

function corrupt(problem: string): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidArgument, `the archive is corrupt: ${problem}`);
}

/** The artefact whose bytes are arriving. */
interface Incoming {
  artifact: Artifact;
  chunks: Buffer[];
  received: number;
  hash: Hash;
}

/**
 * Takes in an archive's parts, in order, and refuses the first that breaks the format, with an
 * InvalidArgument error naming the problem.
 *
 * @example
 * const receiver = new ArchiveReceiver(256 << 20);
 * for await (const part of parts) receiver.add(part);
 * const archive = receiver.finish();
 */
export class ArchiveReceiver {
  private readonly digest = new ArchiveDigest();
  private header: ReceivedArchive['header'] | undefined;
  private readonly journals: ActorJournal[] = [];
  private readonly artifacts: ReceivedArchive['artifacts'] = [];
  private readonly ledger: LedgerEntry[] = [];
  private incoming: Incoming | undefined;
  private sha256: string | undefined;
  private bytes = 0;

  /** `maxBytes`: the most an archive may hold, since it is kept in memory until it is checked. */
  constructor(private readonly maxBytes: number) {}

  add(part: ArchivePart): void {
    const body = part.part;
    if (this.sha256 !== undefined) throw corrupt('a part follows its trailer');
    if (body === undefined) throw corrupt(`part ${this.digest.parts + 1} is empty`);
    if (this.header === undefined && body.$case !== 'header') throw corrupt(`it starts with ${body.$case}, not with a header`);
    switch (body.$case) {
      case 'header': {
        if (this.header !== undefined) throw corrupt('it has a second header');
        const { formatVersion, project } = body.value;
        if (formatVersion !== ARCHIVE_FORMAT_VERSION) {
          throw new RuntimeError(
            RuntimeErrorCode.InvalidArgument,
            `the archive's format version ${formatVersion} is not supported: this runtime reads version ${ARCHIVE_FORMAT_VERSION}`,
          );
        }
        if (project === undefined || project.namespace === '' || project.name === '') throw corrupt('its header names no project');
        this.header = { ...body.value, project };
        break;
      }
      case 'journal':
        if (this.artifacts.length > 0 || this.incoming !== undefined || this.ledger.length > 0)
          throw corrupt(`the journal of ${body.value.actorType}/${body.value.actorId} comes after the artefacts`);
        this.journals.push(body.value);
        break;
      case 'artifact':
        this.finishArtifact();
        if (this.ledger.length > 0) throw corrupt(`artefact ${body.value.name} comes after the ledger`);
        this.incoming = { artifact: body.value, chunks: [], received: 0, hash: createHash('sha256') };
        break;
      case 'artifactData': {
        const incoming = this.incoming;
        if (incoming === undefined) throw corrupt('artefact data comes before any artefact');
        incoming.received += body.value.byteLength;
        if (incoming.received > incoming.artifact.bytes)
          throw corrupt(`artefact ${incoming.artifact.name} has more than the ${incoming.artifact.bytes} bytes its size says`);
        incoming.hash.update(body.value);
        incoming.chunks.push(body.value);
        break;
      }
      case 'ledger':
        this.finishArtifact();
        this.ledger.push(...body.value.entries);
        break;
      case 'trailer': {
        this.finishArtifact();
        const { sha256, parts } = body.value;
        if (parts !== this.digest.parts) throw corrupt(`its trailer counts ${parts} parts before it, but ${this.digest.parts} came`);
        const actual = this.digest.hex();
        if (sha256 !== actual) throw corrupt(`sha256 mismatch: its trailer says ${sha256}, its content hashes to ${actual}`);
        this.sha256 = sha256;
        return;
      }
    }
    this.bytes += this.digest.add(part);
    if (this.bytes > this.maxBytes) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidArgument,
        `the archive is larger than the ${this.maxBytes} bytes this runtime imports`,
      );
    }
  }

  /** The whole archive; refuses one that ended before its trailer or holds other counts than its header says. */
  finish(): ReceivedArchive {
    const { header, sha256 } = this;
    if (header === undefined || sha256 === undefined) throw corrupt('it ends before its trailer: it was cut short');
    const counts: [string, number, number][] = [
      ['journals', header.journals, this.journals.length],
      ['artefacts', header.artifacts, this.artifacts.length],
      ['ledger entries', header.ledgerEntries, this.ledger.length],
    ];
    for (const [what, said, held] of counts) if (said !== held) throw corrupt(`its header says ${said} ${what}, it holds ${held}`);
    return { header, journals: this.journals, artifacts: this.artifacts, ledger: this.ledger, sha256 };
  }

  private finishArtifact(): void {
    const incoming = this.incoming;
    if (incoming === undefined) return;
    this.incoming = undefined;
    const { artifact } = incoming;
    if (incoming.received !== artifact.bytes)
      throw corrupt(`artefact ${artifact.name} has ${incoming.received} of the ${artifact.bytes} bytes its size says`);
    const actual = incoming.hash.digest('hex');
    if (actual !== artifact.sha256)
      throw corrupt(`sha256 mismatch of artefact ${artifact.name}: the archive says ${artifact.sha256}, its bytes hash to ${actual}`);
    this.artifacts.push({ artifact, bytes: Buffer.concat(incoming.chunks) });
  }
}
