/**
 * One partition of the embedded log: an append-only file of frames (see record-codec.ts), an
 * in-memory index of where each record starts, and the scan that repairs a damaged file when
 * it is opened. Offsets are record indexes, so the index turns an offset into a file position.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { RuntimeError, RuntimeErrorCode, TransportError } from '../../errors.js';
import type { ConsumedRecord } from '../transport.js';
import { FORMAT_VERSION, FRAME_HEADER_BYTES, MAX_BODY_BYTES, MIN_BODY_BYTES, bodyIntact, decodeBody } from './record-codec.js';

/** How much of the file the opening scan reads at a time. */
const SCAN_CHUNK_BYTES = 1 << 20;

/** How far past a damaged frame the scan looks for intact records, to tell a torn tail from damage in the middle. */
const RESYNC_WINDOW_BYTES = 1 << 20;

/** A batch stops growing at this size (kafkajs' maxBytesPerPartition default) but always holds one record. */
const MAX_BATCH_BYTES = 1 << 20;

export interface PartitionLogOptions {
  path: string;
  topic: string;
  partition: number;
  /** Sync the truncation of a damaged tail before new records are appended after it. */
  durable: boolean;
  report(message: string, error?: Error): void;
}

/**
 * An open partition file. Appends must not overlap: the transport runs one flush at a time.
 * Records become visible to readers only once appended (and synced, when durable), so no
 * consumer ever acts on a record that a crash could take back and its offset then reuse.
 */
export class PartitionLog {
  readonly #handle: FileHandle;
  readonly #options: PartitionLogOptions;
  readonly #starts: StartIndex;
  #end: number;
  readonly #waiters = new Set<() => void>();

  private constructor(handle: FileHandle, options: PartitionLogOptions, starts: StartIndex, end: number) {
    this.#handle = handle;
    this.#options = options;
    this.#starts = starts;
    this.#end = end;
  }

  /**
   * Opens (or creates) the file and indexes it. A torn or damaged tail (a short frame, an
   * impossible length, a checksum mismatch) is truncated at the last intact record and
   * reported once; damage with intact records after it is truncated the same way, because
   * offsets are positions and a gap cannot be skipped, and the report says so.
   */
  static async open(options: PartitionLogOptions): Promise<PartitionLog> {
    const handle = await open(options.path, constants.O_RDWR | constants.O_CREAT, 0o644);
    try {
      const { size } = await handle.stat();
      const window = new FileWindow(handle, size);
      const starts = new StartIndex();
      let at = 0;
      while (at < size) {
        const frame = await checkFrame(window, at);
        if (!frame.intact) {
          options.report(await describeDamage(window, options.path, starts.count, at, frame));
          await handle.truncate(at);
          if (options.durable) await handle.datasync();
          break;
        }
        // Intact but unreadable is a newer writer's record, not damage: refuse rather than truncate it.
        if (frame.format !== FORMAT_VERSION) {
          throw new TransportError(
            RuntimeErrorCode.Corrupt,
            options.topic,
            options.partition,
            `record ${starts.count} in ${options.path} has record format ${frame.format}, which this version cannot read`,
          );
        }
        starts.push(at);
        at += FRAME_HEADER_BYTES + frame.length;
      }
      return new PartitionLog(handle, options, starts, at);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The offset the next record will get. */
  get endOffset(): number {
    return this.#starts.count;
  }

  /**
   * Writes frames after the last record in one write, syncs when `durable`, then makes them
   * readable. On failure nothing becomes readable and the partial write is cut off again.
   */
  async append(frames: readonly Buffer[], durable: boolean): Promise<void> {
    const at = this.#end;
    const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    try {
      await writeFully(this.#handle, data, at);
      if (durable) await this.#handle.datasync();
    } catch (error) {
      // Later appends write at `at` anyway; the cut keeps a crash from reviving unacknowledged frames.
      await this.#handle
        .truncate(at)
        .catch((truncateError: unknown) =>
          this.#options.report(`${this.#options.path}: could not cut off a failed append at byte ${at}`, truncateError as Error),
        );
      throw error;
    }
    let start = at;
    for (const frame of frames) {
      this.#starts.push(start);
      start += frame.length;
    }
    this.#end = start;
    for (const wake of this.#waiters) wake();
  }

  /** Up to `max` records from `from` on (fewer past MAX_BATCH_BYTES), read with one positional read. */
  async read(from: number, max: number): Promise<ConsumedRecord[]> {
    const count = this.#starts.count;
    if (from >= count) return [];
    const startOf = (offset: number): number => (offset < count ? this.#starts.at(offset) : this.#end);
    const first = startOf(from);
    const limit = Math.min(count, from + max);
    let to = from + 1;
    while (to < limit && startOf(to + 1) - first <= MAX_BATCH_BYTES) to++;
    const bytes = await readFully(this.#handle, first, startOf(to) - first);

    const { topic, partition } = this.#options;
    const records: ConsumedRecord[] = [];
    for (let offset = from; offset < to; offset++) {
      const at = startOf(offset) - first;
      const length = bytes.readUInt32LE(at);
      const body = bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
      // The opening scan checked every record; this catches damage to the file since then.
      if (body.length !== length || !bodyIntact(body, bytes.readUInt32LE(at + 4))) {
        throw new TransportError(
          RuntimeErrorCode.Corrupt,
          topic,
          partition,
          `record ${offset} in ${this.#options.path} fails its checksum`,
        );
      }
      try {
        records.push({ topic, partition, offset, ...decodeBody(body) });
      } catch (cause) {
        throw new TransportError(
          RuntimeErrorCode.Corrupt,
          topic,
          partition,
          `record ${offset} in ${this.#options.path} cannot be decoded`,
          { cause },
        );
      }
    }
    return records;
  }

  /** Resolves once a record at `offset` exists, or when `signal` aborts; no polling. */
  waitForAppend(offset: number, signal: AbortSignal): Promise<void> {
    if (offset < this.#starts.count || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        if (offset >= this.#starts.count && !signal.aborted) return;
        this.#waiters.delete(wake);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  /** Syncs and closes the file. Consumers must have stopped (their signals aborted) before. */
  async close(): Promise<void> {
    try {
      await this.#handle.datasync();
    } finally {
      await this.#handle.close();
    }
  }
}

/** Start positions of records, 8 bytes each, grown by doubling. */
class StartIndex {
  #positions = new Float64Array(1024);
  #count = 0;

  get count(): number {
    return this.#count;
  }

  at(offset: number): number {
    return this.#positions[offset]!;
  }

  push(position: number): void {
    if (this.#count === this.#positions.length) {
      const grown = new Float64Array(this.#positions.length * 2);
      grown.set(this.#positions);
      this.#positions = grown;
    }
    this.#positions[this.#count++] = position;
  }
}

/** A read-ahead view of the file for the opening scan, so it reads megabytes, not frames. */
class FileWindow {
  #start = 0;
  #buffer: Buffer = Buffer.alloc(0);

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  /** `length` bytes at `at`; the caller keeps `at + length` within `size`. */
  async bytes(at: number, length: number): Promise<Buffer> {
    if (at < this.#start || at + length > this.#start + this.#buffer.length) {
      this.#buffer = await readFully(this.handle, at, Math.min(Math.max(length, SCAN_CHUNK_BYTES), this.size - at));
      this.#start = at;
    }
    return this.#buffer.subarray(at - this.#start, at - this.#start + length);
  }
}

type FrameCheck = { intact: true; length: number; format: number | undefined } | { intact: false; reason: string; length?: number };

async function checkFrame(window: FileWindow, at: number): Promise<FrameCheck> {
  const remaining = window.size - at;
  if (remaining < FRAME_HEADER_BYTES)
    return { intact: false, reason: `a frame header cut short at ${remaining} of ${FRAME_HEADER_BYTES} bytes` };
  const header = await window.bytes(at, FRAME_HEADER_BYTES);
  const length = header.readUInt32LE(0);
  const crc = header.readUInt32LE(4);
  if (length < MIN_BODY_BYTES || length > MAX_BODY_BYTES) return { intact: false, reason: `an impossible body length ${length}` };
  if (length > remaining - FRAME_HEADER_BYTES) {
    return { intact: false, reason: `a body cut short at ${remaining - FRAME_HEADER_BYTES} of ${length} bytes` };
  }
  const body = await window.bytes(at + FRAME_HEADER_BYTES, length);
  if (!bodyIntact(body, crc)) return { intact: false, reason: 'a checksum mismatch', length };
  return { intact: true, length, format: body[0] };
}

async function describeDamage(
  window: FileWindow,
  path: string,
  offset: number,
  at: number,
  damage: FrameCheck & { intact: false },
): Promise<string> {
  const place = `record ${offset} (byte ${at}: ${damage.reason})`;
  const dropped = window.size - at;
  const next = await findIntactFrame(window, at, damage.length === undefined ? undefined : at + FRAME_HEADER_BYTES + damage.length);
  if (next === undefined) return `${path}: truncated a torn or damaged tail at ${place}, dropping ${dropped} bytes`;
  let intact = 0;
  for (let position = next; position < window.size; intact++) {
    const frame = await checkFrame(window, position);
    if (!frame.intact) break;
    position += FRAME_HEADER_BYTES + frame.length;
  }
  return (
    `${path}: CORRUPTION IN THE MIDDLE of the file at ${place}; truncated there, dropping ${dropped} bytes ` +
    `including ${intact} intact-looking records after the damage`
  );
}

/** The position of an intact frame after damaged bytes at `from`, if one is within reach. */
async function findIntactFrame(window: FileWindow, from: number, claimedEnd: number | undefined): Promise<number | undefined> {
  // A flipped bit in a body leaves its length right, so the next frame starts where it says.
  if (claimedEnd !== undefined && claimedEnd < window.size && (await checkFrame(window, claimedEnd)).intact) return claimedEnd;
  const last = Math.min(window.size - FRAME_HEADER_BYTES - MIN_BODY_BYTES, from + RESYNC_WINDOW_BYTES);
  for (let at = from + 1; at <= last; at++) {
    // Cheap screens first: a plausible length and the format byte, then the checksum.
    const head = await window.bytes(at, FRAME_HEADER_BYTES + 1);
    const length = head.readUInt32LE(0);
    if (length < MIN_BODY_BYTES || length > window.size - at - FRAME_HEADER_BYTES || head[FRAME_HEADER_BYTES] !== FORMAT_VERSION) continue;
    if ((await checkFrame(window, at)).intact) return at;
  }
  return undefined;
}

async function readFully(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  for (let filled = 0; filled < length;) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0)
      throw new RuntimeError(RuntimeErrorCode.Corrupt, `a partition file ends at byte ${position + filled}, before its indexed records do`);
    filled += bytesRead;
  }
  return buffer;
}

async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let written = 0; written < data.length;) {
    const { bytesWritten } = await handle.write(data, written, data.length - written, position + written);
    written += bytesWritten;
  }
}
