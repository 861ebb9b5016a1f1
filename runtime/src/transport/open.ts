/**
 * Chooses and opens a Transport implementation from configuration. Only composition roots
 * (and test fixtures) call this; everything else receives a `Transport`.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { EmbeddedTransport } from './embedded/embedded-transport.js';
import { KafkaTransport, type KafkaTransportOptions } from './kafka/kafka-transport.js';
import type { Transport } from './transport.js';

/**
 * Which Transport to open, discriminated on `kind`.
 * - `embedded`: the file-backed log in `dir` for one process; `fsync` as in
 *   {@link EmbeddedTransport} (default `'always'`).
 * - `kafka`: the brokers in `brokers`, with the other options of {@link KafkaTransport}
 *   except `log` (a config is data; kafkajs's and the transport's messages go to console.warn,
 *   filtered by `logLevel`).
 */
export type TransportConfig =
  { kind: 'embedded'; dir: string; fsync?: 'always' | 'never' } | ({ kind: 'kafka' } & Omit<KafkaTransportOptions, 'log'>);

/**
 * Opens the configured Transport. Configs may come from JSON, so an unknown `kind` is refused
 * at run time too.
 *
 * @example
 * const transport = await openTransport({ kind: 'embedded', dir: join(dataDir, 'log') });
 */
export async function openTransport(config: TransportConfig): Promise<Transport> {
  switch (config.kind) {
    case 'embedded':
      return EmbeddedTransport.open({ dir: config.dir, fsync: config.fsync });
    case 'kafka': {
      const { kind: _kind, ...options } = config;
      return KafkaTransport.open(options);
    }
    default:
      return unknownKind(config);
  }
}

// Typed `never`, so adding a member to TransportConfig without a case fails to compile.
function unknownKind(config: never): never {
  const { kind } = config as { kind?: unknown };
  throw new RuntimeError(
    RuntimeErrorCode.InvalidOptions,
    `transport config \`kind\` ${JSON.stringify(kind)} is not one of: embedded, kafka`,
  );
}
