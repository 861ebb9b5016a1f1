import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HarnessError, HarnessErrorCode } from './errors.js';
import { run, which } from './process.js';

function goBinary(): string {
  const go = which('go');
  if (go === undefined) {
    throw new HarnessError(
      HarnessErrorCode.MissingTool,
      'Go is not installed: the harness builds etcd, kube-apiserver and helm from Go modules (install Go 1.24 or newer)',
    );
  }
  return go;
}

/** Runs `go` with the module proxy settings of the machine and module mode forced on. */
export function go(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return run(goBinary(), args, { cwd, env: { ...process.env, GO111MODULE: 'on', GOFLAGS: '-buildvcs=false', ...env } });
}

/**
 * Writes a wrapper module in `dir` whose only purpose is to pin `requires` (and `replaces`)
 * so that `go build <package>` can build a main package of a module that cannot be
 * `go install`ed directly (its own go.mod has replace lines).
 */
export async function wrapperModule(
  dir: string,
  name: string,
  imports: readonly string[],
  requires: Readonly<Record<string, string>>,
  replaces: Readonly<Record<string, string>> = {},
): Promise<void> {
  const require = Object.entries(requires).map(([path, version]) => `\t${path} ${version}`);
  const replace = Object.entries(replaces).map(([path, version]) => `\t${path} => ${path} ${version}`);
  writeFileSync(
    join(dir, 'go.mod'),
    [`module ${name}`, '', 'go 1.24.0', '', 'require (', ...require, ')', '', 'replace (', ...replace, ')', ''].join('\n'),
  );
  writeFileSync(
    join(dir, 'tools.go'),
    ['//go:build tools', '', 'package tools', '', 'import (', ...imports.map((path) => `\t_ "${path}"`), ')', ''].join('\n'),
  );
  await go(['mod', 'tidy'], dir);
}
