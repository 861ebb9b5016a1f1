// Generates proto/src/gen from the .proto sources with the locally installed buf and ts-proto.
// The output is committed so consumers need no codegen step; `--check` keeps it honest by
// generating into a temporary directory and failing, with the list of differing files, when
// that differs from what is committed. Both modes lint the sources first.
//
//   node proto/scripts/generate.mjs           lint, format the .proto files, regenerate src/gen
//   node proto/scripts/generate.mjs --check   lint, check formatting, compare with src/gen
//
// Works from any cwd: paths are resolved from this file.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Where buf.gen.yaml writes, relative to PROTO_DIR (its `out`). */
const GEN_DIR = join('src', 'gen');

/**
 * The node_modules/.bin holding both `buf` and `protoc-gen-ts_proto`, looked up from the proto
 * workspace towards the root the way Node resolves packages, so hoisted installs work too.
 */
function findBinDir() {
  for (let dir = PROTO_DIR; ; dir = dirname(dir)) {
    const bin = join(dir, 'node_modules', '.bin');
    if (existsSync(join(bin, 'buf')) && existsSync(join(bin, 'protoc-gen-ts_proto'))) return bin;
    if (dirname(dir) === dir) {
      throw new Error(
        `node_modules/.bin with buf and protoc-gen-ts_proto not found above ${PROTO_DIR}; run npm install`,
      );
    }
  }
}

const BIN_DIR = findBinDir();
// buf.gen.yaml names the plugin `protoc-gen-ts_proto`; buf finds it on PATH, so the local one wins.
const ENV = { ...process.env, PATH: `${BIN_DIR}${delimiter}${process.env.PATH ?? ''}` };

/** Runs buf in PROTO_DIR; returns its exit status, having passed its output through. */
function buf(args) {
  const result = spawnSync(join(BIN_DIR, 'buf'), args, { cwd: PROTO_DIR, env: ENV, stdio: 'inherit' });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

/** Every file under `dir`, as paths relative to it with `/` separators, sorted. */
function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split('\\').join('/'))
    .sort();
}

/** Files that are missing, extra or different in `actualDir` compared with `expectedDir`. */
function diffTrees(expectedDir, actualDir) {
  const expected = new Set(listFiles(expectedDir));
  const actual = new Set(listFiles(actualDir));
  const differences = [];
  for (const file of expected) {
    if (!actual.has(file)) differences.push(`missing: ${file}`);
    else if (!readFileSync(join(expectedDir, file)).equals(readFileSync(join(actualDir, file)))) {
      differences.push(`changed: ${file}`);
    }
  }
  for (const file of actual) if (!expected.has(file)) differences.push(`stale:   ${file}`);
  return differences;
}

function check() {
  if (buf(['lint']) !== 0) return fail('buf lint failed');
  if (buf(['format', '--diff', '--exit-code']) !== 0) {
    return fail('the .proto files are not formatted; run `npm run generate -w proto`');
  }
  const tmp = mkdtempSync(join(tmpdir(), 'troupe-proto-'));
  try {
    if (buf(['generate', '--output', tmp]) !== 0) return fail('buf generate failed');
    const differences = diffTrees(join(tmp, GEN_DIR), join(PROTO_DIR, GEN_DIR));
    if (differences.length > 0) {
      console.error(`proto/${GEN_DIR} is out of date with the .proto sources:`);
      for (const line of differences) console.error(`  ${line}`);
      return fail('run `npm run generate -w proto` and commit the result');
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`proto/${GEN_DIR} is up to date`);
  return 0;
}

function generate() {
  if (buf(['lint']) !== 0) return fail('buf lint failed');
  if (buf(['format', '--write']) !== 0) return fail('buf format failed');
  // buf.gen.yaml has `clean: true`, so files of deleted .proto sources go too.
  if (buf(['generate']) !== 0) return fail('buf generate failed');
  console.log(`generated proto/${GEN_DIR}`);
  return 0;
}

function fail(message) {
  console.error(`proto: ${message}`);
  return 1;
}

const args = process.argv.slice(2);
const unknown = args.filter((arg) => arg !== '--check');
if (unknown.length > 0) {
  console.error(`usage: node scripts/generate.mjs [--check] (unknown: ${unknown.join(' ')})`);
  process.exit(2);
}
process.exitCode = args.includes('--check') ? check() : generate();
