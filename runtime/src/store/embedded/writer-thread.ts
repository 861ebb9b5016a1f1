/**
 * The process's one writer thread (embedded-writer.worker.ts), shared by every EmbeddedStore it
 * opens: each store's database gets its own writing connection there, named by a number. One
 * thread rather than one per store, because a thread's start (and, running from TypeScript
 * sources, its loader's) costs far more than a connection; a process that opens and closes
 * stores often pays for it once. The thread holds the process open only while a reply is due.
 */
import type { Worker } from 'node:worker_threads';

import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { startWorker } from '../../worker-module.js';
import { fromFailure } from './embedded-db.js';
import type { WriterReply, WriterRequest } from './embedded-writer.worker.js';

/** Each member of the union `T` without the keys `K`. */
export type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A request as a store sends it; the id is added on the way. */
export type WriterCall = Without<WriterRequest, 'id'>;

/** A request's reply when it went well; a failed one rejects. */
export type WriterAnswer = WriterReply & { ok: true };

interface PendingRequest {
  resolve(reply: WriterAnswer): void;
  reject(error: Error): void;
}

let current: WriterThread | undefined;

export class WriterThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, PendingRequest>();
  private nextRequest = 1;
  private nextDatabase = 1;
  /** Why the thread is gone, once it is. */
  private gone: Error | undefined;

  private constructor() {
    this.worker = startWorker(import.meta.url, './embedded-writer.worker', 'the embedded store');
    this.worker.unref();
    this.worker.on('message', (reply: WriterReply) => this.settle(reply));
    this.worker.on('error', (error) => this.lose(`the embedded store's writer thread failed: ${error.message}`));
    this.worker.on('exit', (code) => this.lose(`the embedded store's writer thread exited with code ${code}`));
  }

  /** The process's writer thread, started on first use (and again after one that died). */
  static shared(): WriterThread {
    if (current === undefined || current.gone !== undefined) current = new WriterThread();
    return current;
  }

  /** A number for a database of this thread, unique while the thread lives. */
  newDatabase(): number {
    return this.nextDatabase++;
  }

  /** Sends a request; the serialized ops of a group are moved to the thread, not copied. */
  request(call: WriterCall): Promise<WriterAnswer> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextRequest++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      const request = { ...call, id } as WriterRequest;
      this.worker.postMessage(request, request.type === 'group' ? request.ops.map((op) => op.buffer as ArrayBuffer) : []);
    });
  }

  private settle(reply: WriterReply): void {
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if (reply.ok) pending.resolve(reply);
    else pending.reject(fromFailure(reply.failure));
  }

  /** The thread is gone: what waits for it fails, as does every request from now on. */
  private lose(why: string): void {
    this.gone ??= new RuntimeError(RuntimeErrorCode.Unavailable, why);
    for (const pending of this.pending.values()) pending.reject(this.gone);
    this.pending.clear();
  }
}
