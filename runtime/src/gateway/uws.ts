/**
 * The one module that loads uWebSockets.js. The package on these machines is an npm alias of
 * `@trufflesuite/uws-js-unofficial` (uWS.js v20.30 binaries for Node 16/18/20); a newer build
 * for Node 22+ is swapped in here and nowhere else.
 */
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior, us_socket_context_t } from 'uWebSockets.js';

let loaded: typeof Uws | undefined;

/**
 * The native uWebSockets.js module. It loads the binary for this Node ABI directly: the
 * package's own entry point silently falls back to a slow pure-JS server when the binary does
 * not load, and a gateway that is quietly 10× slower is worse than one that refuses to start.
 */
export function uws(): typeof Uws {
  if (loaded !== undefined) return loaded;
  const binary = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    loaded = createRequire(import.meta.url)(binary) as typeof Uws;
  } catch (cause) {
    throw new RuntimeError(
      RuntimeErrorCode.Unavailable,
      `uWebSockets.js has no native build for ${process.platform}-${process.arch} and Node ${process.version} (ABI ${process.versions.modules}); swap the build in runtime/src/gateway/uws.ts`,
      { cause },
    );
  }
  return loaded;
}

/** A listening uWS app: its port, and how to stop listening. */
export interface Listening {
  port: number;
  close(): void;
}

/** Listens on `host:port` (0 picks a free port). */
export function listen(app: Uws.TemplatedApp, host: string, port: number): Promise<Listening> {
  const native = uws();
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (socket === false) {
        reject(new RuntimeError(RuntimeErrorCode.Unavailable, `could not listen on ${host}:${port}`));
        return;
      }
      resolve({ port: native.us_socket_local_port(socket as Uws.us_socket), close: () => native.us_listen_socket_close(socket) });
    });
  });
}
