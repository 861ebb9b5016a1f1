/**
 * The embedded stores' writer thread (writer-thread.ts starts one per process): holds a writing
 * connection for each open store's database and applies the group commits and fence claims the
 * stores send, one at a time, in the order sent. The stores' thread keeps reading through its
 * own connections, and no longer stops for SQLite's writes.
 */
import { deserialize } from 'node:v8';
import { parentPort } from 'node:worker_threads';

import type { Fence } from '../store.js';
import { SqliteWriter, normalise, openDatabase, toFailure, type WriteFailure, type WriteOp } from './embedded-db.js';

/**
 * store → writer, each naming its database by the number it was opened under. A group's ops
 * are each v8-serialized, so one that cannot be is refused alone before it is sent.
 */
export type WriterRequest =
  | { id: number; type: 'open'; db: number; path: string; keepInputIds: number }
  | { id: number; type: 'group'; db: number; ops: Uint8Array[]; at: number }
  | { id: number; type: 'claim'; db: number; fence: Fence }
  | { id: number; type: 'claim-next'; db: number; scope: string }
  | { id: number; type: 'close'; db: number };

/** writer → store. A group's `value` is how each of its ops ended, in order (undefined: written). */
export type WriterReply =
  { id: number; ok: true; value?: number | (WriteFailure | undefined)[] } | { id: number; ok: false; failure: WriteFailure };

const port = parentPort!;
const writers = new Map<number, { writer: SqliteWriter; path: string }>();

function handle(request: WriterRequest): WriterReply {
  const { id } = request;
  if (request.type === 'open') {
    try {
      writers.set(request.db, {
        writer: new SqliteWriter(openDatabase(request.path, { migrate: false }), request.path, request.keepInputIds),
        path: request.path,
      });
      return { id, ok: true };
    } catch (error) {
      return { id, ok: false, failure: toFailure(normalise(error, request.path)) };
    }
  }
  const opened = writers.get(request.db);
  if (opened === undefined) return { id, ok: false, failure: { message: `no open database numbered ${request.db}`, retriable: false } };
  const { writer, path } = opened;
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
        writers.delete(request.db);
        writer.close();
        return { id, ok: true };
    }
  } catch (error) {
    return { id, ok: false, failure: toFailure(normalise(error, path)) };
  }
}

port.on('message', (request: WriterRequest) => port.postMessage(handle(request)));
