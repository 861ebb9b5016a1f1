/**
 * A vitest reporter for CI: a skipped or todo test fails the run, so a missing server or a
 * forgotten `.skip` cannot turn into a green build that tested less than it claims.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class NoSkipReporter implements Reporter {
  onTestRunEnd(testModules: readonly TestModule[]): void {
    const skipped = testModules.flatMap((module) =>
      [...module.children.allTests()]
        .filter((test) => test.result().state === 'skipped')
        .map((test) => `${module.moduleId}: ${test.fullName}`),
    );
    if (skipped.length === 0) return;
    console.error(`\nno test may skip in CI, but ${skipped.length} did:\n  ${skipped.join('\n  ')}`);
    process.exitCode = 1;
  }
}
