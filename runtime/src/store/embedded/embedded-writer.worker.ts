/**
 * The embedded store's writer thread: owns the database's writing connection and applies the
 * group commits and fence claims its EmbeddedStore sends, one at a time, in the order sent. The
 * store's thread keeps reading through its own connection, and no longer stops for SQLite's
 * writes.
 */
import { deserialize } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';

import type { Fence } from '../store.js';
import { SqliteWriter, normalise, openDatabase, toFailure, type WriteFailure, type WriteOp } from './embedded-db.js';

/** What the thread starts with. */
export interface WriterData {
  path: string;
  keepInputIds: number;
}

/** store → writer. A group's ops are each v8-serialized, so one that cannot be is refused alone before it is sent. */
export type WriterRequest =
  | { id: number; type: 'group'; ops: Uint8Array[]; at: number }
  | { id: number; type: 'claim'; fence: Fence }
  | { id: number; type: 'claim-next'; scope: string }
  | { id: number; type: 'close' };

/**
 * writer → store. The reply with id 0 says whether the thread opened the database. A group's
 * `value` is how each of its ops ended, in order (undefined: written).
 */
export type WriterReply =
  { id: number; ok: true; value?: number | (WriteFailure | undefined)[] } | { id: number; ok: false; failure: WriteFailure };

const port = parentPort!;
const { path, keepInputIds } = workerData as WriterData;

function handle(writer: SqliteWriter, request: WriterRequest): WriterReply {
  const { id } = request;
  try {
    switch (request.type) {
      case 'group':
        return {
          id,
          ok: true,
          value: writer.commitGroup(
            request.ops.map((op) => deserialize(op) as WriteOp),
            request.at,
          ),
        };
      case 'claim':
        writer.claim(request.fence);
        return { id, ok: true };
      case 'claim-next':
        return { id, ok: true, value: writer.claimNext(request.scope) };
      case 'close':
        writer.close();
        return { id, ok: true };
    }
  } catch (error) {
    return { id, ok: false, failure: toFailure(normalise(error, path)) };
  }
}

let writer: SqliteWriter | undefined;
try {
  writer = new SqliteWriter(openDatabase(path, { migrate: false }), path, keepInputIds);
  port.postMessage({ id: 0, ok: true } satisfies WriterReply);
} catch (error) {
  port.postMessage({ id: 0, ok: false, failure: toFailure(normalise(error, path)) } satisfies WriterReply);
}
if (writer !== undefined) {
  const opened = writer;
  port.on('message', (request: WriterRequest) => {
    port.postMessage(handle(opened, request));
    // The last message: the thread ends once its port is closed.
    if (request.type === 'close') port.close();
  });
}
