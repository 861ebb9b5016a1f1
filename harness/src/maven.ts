import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDebianPackage, run } from './process.js';

/** A Maven coordinate, `groupId:artifactId:version`. */
export type MavenCoordinate = `${string}:${string}:${string}`;

/**
 * Resolves `coordinates` with their runtime dependencies from Maven Central into `libDir`,
 * through a throwaway pom and maven-dependency-plugin's copy-dependencies.
 */
export async function resolveJars(workDir: string, libDir: string, coordinates: readonly MavenCoordinate[]): Promise<void> {
  const mvn = await ensureDebianPackage('mvn', 'maven');
  const dependencies = coordinates
    .map((coordinate) => {
      const [groupId, artifactId, version] = coordinate.split(':');
      return `<dependency><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId><version>${version}</version></dependency>`;
    })
    .join('\n    ');
  writeFileSync(
    join(workDir, 'pom.xml'),
    `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.troupe.harness</groupId>
  <artifactId>server-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    ${dependencies}
  </dependencies>
</project>
`,
  );
  await run(
    mvn,
    [
      '-q',
      '-B',
      'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies',
      `-DoutputDirectory=${libDir}`,
      '-DincludeScope=runtime',
    ],
    { cwd: workDir },
  );
}
