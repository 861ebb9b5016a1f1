/**
 * The `troupe` CLI: drives the Troupe company — the embedded one `npm start` runs, or one on a
 * cluster — through a kubeconfig and the runtime's gRPC API. Parses the command line, runs one
 * command, prints failures as one line on stderr and exits with a code scripts can rely on.
 *
 *   npx troupe get projects
 *   npx troupe apply -f crds/samples/ --wait
 *   TROUPE_TOKEN_SECRET=… npx troupe token --tenant acme
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { apply } from './apply.command.js';
import { connect, parseDuration, type CliContext } from './context.js';
import { describe } from './describe.command.js';
import { describeFailure, ExitCode, usage } from './exit-codes.js';
import { approve } from './approve.command.js';
import { remove } from './delete.command.js';
import { scale } from './scale.command.js';
import { get, outputFormat } from './get.command.js';
import { logs } from './logs.command.js';
import { exportProject } from './export.command.js';
import { importProject } from './import.command.js';
import { token } from './token.command.js';

const HELP = `troupe: drive the Troupe company (the embedded one \`npm start\` runs, or a cluster)

Usage: troupe <command> [flags]

Commands:
  apply -f FILE|DIR [--wait] [--timeout 30m]
        Create or update resources from YAML manifests. Every document is checked against the
        CRD schemas first; if one is refused, nothing is sent. --wait waits until pools,
        providers and workflows are Ready and projects are delivered, failed or awaiting approval.
  get projects|pools|providers|workflows [NAME] [-w] [-o json|yaml|wide] [-A]
        List or show resources. -w keeps watching; with a project NAME it shows its progress bar
        until the project is delivered or failed.
  describe project|pool NAME
        Spec, status, conditions, artefacts and Events of one project or pool.
  approve PROJECT PHASE
        Release the approval gate of PHASE (one of the project's spec.approvals).
  scale pool NAME --replicas N
        Set a pool's replicas (its scale subresource).
  logs PROJECT [-f]
        The project's activity feed; -f follows it live from the runtime until the project ends.
  delete KIND NAME [--wait=false] [--timeout 2m]
        Delete a resource, waiting until its finalizers let it go.
  export project NAME -f FILE
        Write the project's archive from the runtime: its journal, its LLM calls' journals, its
        artefacts and its ledger entries, gzipped into FILE.
  import -f FILE [-n NS]
        Restore the project of an archive into the runtime, in its namespace or in NS. Refused if
        the project exists, or the archive is corrupt or of an unknown version; then nothing is
        stored. Apply the Project resource afterwards to have the operator follow it.
  token (--tenant NS | --role admin|sre) [--sub NAME] [--ttl 12h]
        Print a bearer token for the dashboard, the gateway's API and the runtime's gRPC API,
        signed with $TROUPE_TOKEN_SECRET (the secret the runtime and the gateways check tokens
        with). --tenant: a client who sees namespace NS only; admin sees and does everything;
        sre sees every namespace and may scale pools. --sub names the bearer (default
        client@NS, or the role); approvals record it.

Flags:
  -n, --namespace NS         namespace (default: the kubeconfig context's, else "default")
  -A, --all-namespaces       list across namespaces (get)
  -o, --output FORMAT        json (every command), yaml and wide (get)
      --kubeconfig PATH      default: $TROUPE_KUBECONFIG, else .troupe/data/kubeconfig
      --runtime-address H:P  the runtime's gRPC address (default: from the kubeconfig, else
                             $TROUPE_RUNTIME_ADDRESS); used by logs -f, export and import,
                             with the token in $TROUPE_RUNTIME_TOKEN or else the kubeconfig's
  -h, --help

Exit codes:
  0  ok
  1  refused: an invalid manifest or input the server refused (or a project waited for failed)
  2  usage error
  3  not found
  4  cannot connect: the API server or the runtime is unavailable
  5  timed out waiting
`;

/** crds/ of the repository the CLI runs from: the schemas the validator checks manifests against. */
const CRDS_DIR = fileURLToPath(new URL('../../../crds/', import.meta.url));

const GLOBAL = {
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  output: { type: 'string', short: 'o' },
  kubeconfig: { type: 'string' },
  'runtime-address': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const COMMANDS = {
  apply: { filename: { type: 'string', short: 'f' }, wait: { type: 'string' }, timeout: { type: 'string' } },
  get: { watch: { type: 'boolean', short: 'w' }, timeout: { type: 'string' } },
  describe: {},
  approve: {},
  scale: { replicas: { type: 'string' } },
  logs: { follow: { type: 'boolean', short: 'f' } },
  export: { filename: { type: 'string', short: 'f' } },
  import: { filename: { type: 'string', short: 'f' } },
  delete: { wait: { type: 'string' }, timeout: { type: 'string' } },
  token: { tenant: { type: 'string' }, role: { type: 'string' }, sub: { type: 'string' }, ttl: { type: 'string' } },
} as const satisfies Record<string, ParseArgsConfig['options']>;

type Command = keyof typeof COMMANDS;

/** `--wait` alone means true; parseArgs wants a value for a flag that also takes `--wait=false`. */
function normaliseWait(argv: readonly string[]): string[] {
  return argv.map((arg) => (arg === '--wait' ? '--wait=true' : arg));
}

function bool(value: string | undefined, flag: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw usage(`${flag} must be true or false, got "${value}"`);
}

function positionals(values: readonly string[], count: number, shape: string): string[] {
  if (values.length !== count) throw usage(`expected: troupe ${shape}`);
  return [...values];
}

async function run(argv: readonly string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<ExitCode> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? ExitCode.Usage : ExitCode.Ok;
  }
  if (!(command in COMMANDS)) throw usage(`unknown command "${command}"; run troupe --help`);
  let parsed;
  try {
    parsed = parseArgs({
      args: normaliseWait(rest),
      options: { ...GLOBAL, ...COMMANDS[command as Command] },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw usage((error as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help === true) {
    process.stdout.write(HELP);
    return ExitCode.Ok;
  }
  const flag = (name: string) => values[name] as string | undefined;
  const json = flag('output') === 'json';
  if (command !== 'get' && flag('output') !== undefined && !json) throw usage(`-o for ${command} must be json, got "${flag('output')}"`);
  const timeout = (fallback: number | undefined) =>
    flag('timeout') === undefined ? fallback : parseDuration(flag('timeout') as string, '--timeout');
  const context = (): CliContext =>
    connect({
      kubeconfig: resolve(flag('kubeconfig') ?? env.TROUPE_KUBECONFIG ?? '.troupe/data/kubeconfig'),
      crdsDir: CRDS_DIR,
      namespace: flag('namespace'),
      runtimeAddress: flag('runtime-address') ?? env.TROUPE_RUNTIME_ADDRESS,
      runtimeToken: env.TROUPE_RUNTIME_TOKEN || undefined,
      out: process.stdout,
      signal,
    });
  const args = parsed.positionals;
  switch (command as Command) {
    case 'apply': {
      if (flag('filename') === undefined) throw usage('apply needs -f FILE|DIR');
      positionals(args, 0, 'apply -f FILE|DIR');
      return apply(context(), {
        path: resolve(flag('filename') as string),
        wait: bool(flag('wait'), '--wait', false),
        timeoutMs: timeout(30 * 60_000) as number,
        json,
      });
    }
    case 'get': {
      if (args.length < 1 || args.length > 2) throw usage('expected: troupe get projects|pools|providers|workflows [NAME]');
      const output = outputFormat(flag('output'), ['table', 'wide', 'json', 'yaml']);
      return get(context(), {
        kind: args[0] as string,
        name: args[1],
        allNamespaces: values['all-namespaces'] === true,
        watch: values.watch === true,
        output,
        timeoutMs: timeout(undefined),
      });
    }
    case 'describe': {
      const [kind, name] = positionals(args, 2, 'describe project|pool NAME');
      return describe(context(), { kind: kind as string, name: name as string, json });
    }
    case 'approve': {
      const [project, phase] = positionals(args, 2, 'approve PROJECT PHASE');
      return approve(context(), { project: project as string, phase: phase as string, json });
    }
    case 'scale': {
      const [kind, name] = positionals(args, 2, 'scale pool NAME --replicas N');
      const replicas = Number(flag('replicas'));
      if (flag('replicas') === undefined || !Number.isInteger(replicas) || replicas < 0)
        throw usage(`--replicas must be a whole number ≥ 0, got "${flag('replicas') ?? ''}"`);
      return scale(context(), { kind: kind as string, name: name as string, replicas, json });
    }
    case 'logs': {
      const [project] = positionals(args, 1, 'logs PROJECT [-f]');
      return logs(context(), { project: project as string, follow: values.follow === true, json });
    }
    case 'export': {
      const [kind, name] = positionals(args, 2, 'export project NAME -f FILE');
      if (flag('filename') === undefined) throw usage('export needs -f FILE');
      const file = resolve(flag('filename') as string);
      return exportProject(context(), { kind: kind as string, name: name as string, file, json, progress: process.stderr });
    }
    case 'import': {
      positionals(args, 0, 'import -f FILE [-n NS]');
      if (flag('filename') === undefined) throw usage('import needs -f FILE');
      const file = resolve(flag('filename') as string);
      // Without -n the project goes back to its own namespace, not to the kubeconfig's.
      return importProject(context(), { file, namespace: flag('namespace'), json, progress: process.stderr });
    }
    case 'token': {
      positionals(args, 0, 'token (--tenant NS | --role admin|sre) [--sub NAME] [--ttl 12h]');
      return token({
        secret: env.TROUPE_TOKEN_SECRET,
        tenant: flag('tenant'),
        role: flag('role'),
        sub: flag('sub'),
        ttlMs: flag('ttl') === undefined ? undefined : parseDuration(flag('ttl') as string, '--ttl'),
        json,
        out: process.stdout,
      });
    }
    case 'delete': {
      const [kind, name] = positionals(args, 2, 'delete KIND NAME');
      return remove(context(), {
        kind: kind as string,
        name: name as string,
        wait: bool(flag('wait'), '--wait', true),
        timeoutMs: timeout(2 * 60_000) as number,
        json,
      });
    }
  }
}

const interrupt = new AbortController();
process.once('SIGINT', () => interrupt.abort());

run(process.argv.slice(2), process.env, interrupt.signal).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const { exitCode, message } = describeFailure(error);
    process.stderr.write(`error: ${message}\n`);
    process.exit(exitCode);
  },
);
