import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HarnessError, HarnessErrorCode } from './errors.js';
import { run, which } from './process.js';

/**
 * Finds a Java 17 runtime: Cassandra 5.0 supports 11 and 17 only, and Kafka 4 needs 17+.
 * Prefers `java` on PATH when it is 17, else a JDK 17 under /usr/lib/jvm.
 */
export async function java17(): Promise<string> {
  const onPath = which('java');
  if (onPath !== undefined && (await majorVersion(onPath)) === 17) return onPath;
  const jvmRoot = '/usr/lib/jvm';
  const candidates = existsSync(jvmRoot) ? readdirSync(jvmRoot).filter((name) => /(^|-)17([.-]|$)/.test(name)) : [];
  for (const name of candidates) {
    const binary = join(jvmRoot, name, 'bin', 'java');
    if (existsSync(binary) && (await majorVersion(binary)) === 17) return binary;
  }
  throw new HarnessError(
    HarnessErrorCode.MissingTool,
    'Java 17 is not installed (Cassandra 5.0 runs on Java 17 only): apt-get install openjdk-17-jre-headless',
  );
}

async function majorVersion(binary: string): Promise<number | undefined> {
  const output = await run(binary, ['-XshowSettings:properties', '-version']).catch(() => '');
  const match = /java\.specification\.version = (\d+)/.exec(output);
  return match ? Number(match[1]) : undefined;
}
