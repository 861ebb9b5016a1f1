import { defineConfig } from 'vitest/config';

/** One vitest project per workspace; the real servers start once for the whole run. */
const workspaces = ['harness', 'proto', 'runtime', 'operator', 'load-tests'] as const;

export default defineConfig({
  test: {
    globalSetup: ['./harness/src/global-setup.ts'],
    reporters: process.env.CI === 'true' ? ['default', './harness/src/no-skip-reporter.ts'] : ['default'],
    allowOnly: process.env.CI !== 'true',
    projects: workspaces.map((name) => ({
      test: {
        name,
        root: `./${name}`,
        include: ['src/**/*.test.ts'],
        // Real servers answer in milliseconds once up, but a cold JVM's first answers do not.
        testTimeout: 60_000,
        hookTimeout: 120_000,
      },
    })),
  },
});
