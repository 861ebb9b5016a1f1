import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import cassandra from 'cassandra-driver';
import { cachedArtifact } from '../cache.js';
import { java17 } from '../java.js';
import { resolveJars } from '../maven.js';
import { freePort } from '../ports.js';
import { startServer, waitUntilReady } from '../process.js';
import type { ServerContext, Started } from './types.js';

export const CASSANDRA_VERSION = '5.0.9';

export interface CassandraEndpoint {
  contactPoints: string[];
  localDataCenter: string;
}

/** The module-system openings Cassandra needs on Java 17 (its conf/jvm17-server.options). */
const JAVA17_OPENINGS = [
  ...[
    'java.base/jdk.internal.misc',
    'java.management.rmi/com.sun.jmx.remote.internal.rmi',
    'java.rmi/sun.rmi.registry',
    'java.rmi/sun.rmi.server',
    'java.sql/java.sql',
    'java.base/java.lang.ref',
    'jdk.unsupported/sun.misc',
    'jdk.compiler/com.sun.tools.javac.file',
    'jdk.attach/sun.tools.attach',
  ].map((name) => `--add-exports=${name}=ALL-UNNAMED`),
  ...[
    'java.base/java.lang.module',
    'java.base/jdk.internal.loader',
    'java.base/jdk.internal.ref',
    'java.base/jdk.internal.reflect',
    'java.base/jdk.internal.math',
    'java.base/jdk.internal.module',
    'java.base/jdk.internal.util.jar',
    'jdk.management/com.sun.management.internal',
    'java.base/sun.nio.ch',
    'java.base/java.io',
    'java.base/java.lang.reflect',
    'jdk.compiler/com.sun.tools.javac',
    'java.base/java.lang',
    'java.base/java.util',
  ].map((name) => `--add-opens=${name}=ALL-UNNAMED`),
];

/** A single-node Cassandra 5.0 on loopback. Expect 20–60 s to start and ~1.5 GB resident. */
export async function startCassandra(context: ServerContext): Promise<Started<CassandraEndpoint>> {
  const [java, home] = await Promise.all([java17(), installCassandra(context.cacheDir)]);
  const dir = join(context.runDir, 'cassandra');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const [nativePort, storagePort] = [await freePort(), await freePort()];
  const config = join(dir, 'cassandra.yaml');
  writeFileSync(config, cassandraYaml(nativePort, storagePort));
  writeFileSync(join(dir, 'logback.xml'), LOGBACK);
  const lib = join(home, 'lib');

  const endpoint = { contactPoints: [`127.0.0.1:${nativePort}`], localDataCenter: 'datacenter1' };
  const launch = async () => {
    const server = startServer(
      java,
      [
        '-Xms1g',
        '-Xmx1g',
        '-XX:+UseG1GC',
        '-XX:+CrashOnOutOfMemoryError',
        '-Djava.awt.headless=true',
        '-Djdk.attach.allowAttachSelf=true',
        '-Dio.netty.tryReflectionSetAccessible=true',
        ...JAVA17_OPENINGS,
        `-javaagent:${join(lib, 'jamm-0.4.0.jar')}`,
        `-Dcassandra.config=file://${config}`,
        `-Dcassandra.storagedir=${join(dir, 'data')}`,
        `-Dlogback.configurationFile=${join(dir, 'logback.xml')}`,
        '-Dcassandra-foreground=yes',
        '-Dcassandra.skip_wait_for_gossip_to_settle=0',
        '-Dcassandra.initial_token=0',
        '-Dcassandra.superuser_setup_delay_ms=0',
        '-cp',
        `${lib}/*`,
        'org.apache.cassandra.service.CassandraDaemon',
      ],
      { logFile: join(dir, 'cassandra.log') },
    );
    await waitUntilReady('Cassandra', server, () => cqlAnswers(endpoint), 180_000);
    return [server.pid];
  };
  return { endpoint, pids: await launch(), relaunch: launch };
}

function installCassandra(cacheDir: string): Promise<string> {
  return cachedArtifact(
    cacheDir,
    `cassandra-${CASSANDRA_VERSION}`,
    `resolving Cassandra ${CASSANDRA_VERSION} jars from Maven Central`,
    (dir) => resolveJars(dir, join(dir, 'lib'), [`org.apache.cassandra:cassandra-all:${CASSANDRA_VERSION}`]),
  );
}

function cassandraYaml(nativePort: number, storagePort: number): string {
  return `cluster_name: troupe-test
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
commitlog_sync: periodic
commitlog_sync_period: 10000ms
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: ${storagePort}
native_transport_port: ${nativePort}
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:${storagePort}"
auto_snapshot: false
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
`;
}

const LOGBACK = `<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
  <logger name="org.apache.cassandra.service.CassandraDaemon" level="INFO"/>
</configuration>
`;

async function cqlAnswers(endpoint: CassandraEndpoint): Promise<boolean> {
  const client = new cassandra.Client({ ...endpoint, socketOptions: { connectTimeout: 2000 } });
  try {
    await client.connect();
    const result = await client.execute('SELECT release_version FROM system.local');
    return result.rowLength === 1;
  } finally {
    await client.shutdown();
  }
}
