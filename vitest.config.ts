import { defineConfig } from 'vitest/config';

/** One vitest project per workspace and one for the Helm chart; the real servers start once for the whole run. */
const workspaces = ['harness', 'proto', 'runtime', 'operator', 'load-tests'] as const;

export default defineConfig({
  test: {
    globalSetup: ['./harness/src/global-setup.ts'],
    reporters: process.env.CI === 'true' ? ['default', './harness/src/no-skip-reporter.ts'] : ['default'],
    allowOnly: process.env.CI !== 'true',
    projects: [
      ...workspaces.map((name) => ({ name, root: `./${name}`, include: ['src/**/*.test.ts'] })),
      { name: 'helm', root: './helm', include: ['tests/**/*.test.ts'] },
    ].map((project) => ({
      test: {
        ...project,
        // Real servers answer in milliseconds once up, but a cold JVM's first answers do not.
        testTimeout: 60_000,
        hookTimeout: 120_000,
      },
    })),
  },
});
