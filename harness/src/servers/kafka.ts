import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { cachedArtifact } from '../cache.js';
import { java17 } from '../java.js';
import { resolveJars } from '../maven.js';
import { freePort } from '../ports.js';
import { run, startServer, waitUntilReady } from '../process.js';
import type { ServerContext, Started } from './types.js';

export const KAFKA_VERSION = '4.1.1';
const LOG4J_VERSION = '2.25.3';

export interface KafkaEndpoint {
  brokers: string[];
}

/** A single combined broker+controller Kafka node in KRaft mode. */
export async function startKafka(context: ServerContext): Promise<Started<KafkaEndpoint>> {
  const [java, home] = await Promise.all([java17(), installKafka(context.cacheDir)]);
  const dir = join(context.runDir, 'kafka');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const [port, controllerPort] = [await freePort(), await freePort()];
  const config = join(dir, 'server.properties');
  writeFileSync(config, serverProperties(port, controllerPort, join(dir, 'data')));
  writeFileSync(
    join(dir, 'log4j2.properties'),
    'rootLogger.level = WARN\nrootLogger.appenderRef.stdout.ref = STDOUT\nappender.stdout.type = Console\nappender.stdout.name = STDOUT\nappender.stdout.layout.type = PatternLayout\nappender.stdout.layout.pattern = [%d] %p %m (%c)%n\n',
  );
  const classpath = ['-cp', `${join(home, 'lib')}/*`, `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`];

  // KRaft refuses to start on unformatted storage; the cluster id only has to be 16 random bytes.
  const clusterId = randomBytes(16).toString('base64url');
  // `=` keeps an id that starts with '-' (base64url has them) from reading as an option.
  await run(java, [...classpath, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, `--config=${config}`]);

  const brokers = [`127.0.0.1:${port}`];
  const launch = async () => {
    const server = startServer(
      java,
      ['-Xms256m', '-Xmx512m', '-XX:+UseG1GC', '-Djava.awt.headless=true', ...classpath, 'kafka.Kafka', config],
      {
        logFile: join(dir, 'kafka.log'),
      },
    );
    await waitUntilReady('Kafka', server, () => metadataAnswers(brokers), 90_000);
    return [server.pid];
  };
  return { endpoint: { brokers }, pids: await launch(), relaunch: launch };
}

function installKafka(cacheDir: string): Promise<string> {
  return cachedArtifact(cacheDir, `kafka-${KAFKA_VERSION}`, `resolving Kafka ${KAFKA_VERSION} jars from Maven Central`, (dir) =>
    resolveJars(dir, join(dir, 'lib'), [
      `org.apache.kafka:kafka_2.13:${KAFKA_VERSION}`,
      // Kafka's published pom leaves the logging backend to the distribution.
      `org.apache.logging.log4j:log4j-core:${LOG4J_VERSION}`,
      `org.apache.logging.log4j:log4j-slf4j2-impl:${LOG4J_VERSION}`,
    ]),
  );
}

function serverProperties(port: number, controllerPort: number, dataDir: string): string {
  const settings: Record<string, string | number> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': dataDir,
    'num.partitions': 1,
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 8,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'group.initial.rebalance.delay.ms': 0,
    'auto.create.topics.enable': 'false',
  };
  return Object.entries(settings)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n');
}

async function metadataAnswers(brokers: string[]): Promise<boolean> {
  const admin = new Kafka({ clientId: 'troupe-harness', brokers, logLevel: logLevel.NOTHING, retry: { retries: 0 } }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0;
  } finally {
    await admin.disconnect();
  }
}
