/**
 * The two patch formats the embedded resource store accepts: JSON merge patch (RFC 7386, what
 * controllers and `kubectl annotate`/`scale` send for custom resources) and JSON patch
 * (RFC 6902). Both are pure functions of the stored object and the patch; a patch that does not
 * apply throws a StatusError the client can show.
 */
import { isDeepStrictEqual } from 'node:util';
import { StatusError, badRequest } from './api-status.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 7386: objects merge key by key, `null` removes a key, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

interface Operation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

/** A JSON patch that is well formed but does not apply to this object (422, as the API server answers). */
function cannotApply(message: string): StatusError {
  const error = badRequest(message);
  return new StatusError({ ...error.status, code: 422, reason: 'Invalid' });
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw badRequest(`json patch path ${JSON.stringify(path)} must start with /`);
  return path
    .slice(1)
    .split('/')
    .map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** The container holding the last token of `tokens`, and that token. */
function parentOf(document: unknown, tokens: string[], path: string): { parent: Record<string, unknown> | unknown[]; key: string } {
  let node: unknown = document;
  for (const token of tokens.slice(0, -1)) {
    node = Array.isArray(node) ? node[Number(token)] : isObject(node) ? node[token] : undefined;
    if (node === undefined) throw cannotApply(`json patch: path ${path} does not exist`);
  }
  if (!Array.isArray(node) && !isObject(node)) throw cannotApply(`json patch: path ${path} does not exist`);
  return { parent: node, key: tokens[tokens.length - 1] as string };
}

function arrayIndex(array: unknown[], key: string, path: string, forInsert: boolean): number {
  if (forInsert && key === '-') return array.length;
  const index = Number(key);
  const limit = forInsert ? array.length : array.length - 1;
  if (!/^(0|[1-9]\d*)$/.test(key) || index > limit) throw cannotApply(`json patch: index ${key} of ${path} is out of range`);
  return index;
}

function read(document: unknown, path: string): unknown {
  let node = document;
  for (const token of pointer(path)) {
    node = Array.isArray(node) ? node[Number(token)] : isObject(node) ? node[token] : undefined;
    if (node === undefined) throw cannotApply(`json patch: path ${path} does not exist`);
  }
  return node;
}

function add(document: unknown, path: string, value: unknown): unknown {
  const tokens = pointer(path);
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(document, tokens, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, path, true), 0, value);
  else parent[key] = value;
  return document;
}

function remove(document: unknown, path: string): unknown {
  const tokens = pointer(path);
  if (tokens.length === 0) throw cannotApply('json patch: cannot remove the whole object');
  const { parent, key } = parentOf(document, tokens, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, path, false), 1);
  else if (key in parent) delete parent[key];
  else throw cannotApply(`json patch: path ${path} does not exist`);
  return document;
}

/** RFC 6902, applied to a copy of `target`. */
export function jsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw badRequest('a json patch must be a JSON array of operations');
  let document: unknown = structuredClone(target);
  for (const item of patch as unknown[]) {
    if (!isObject(item) || typeof item.op !== 'string' || typeof item.path !== 'string')
      throw badRequest('every json patch operation needs "op" and "path"');
    const raw = item as unknown as Operation;
    const { op, path } = raw;
    switch (op) {
      case 'add':
        document = add(document, path, structuredClone(raw.value));
        break;
      case 'remove':
        document = remove(document, path);
        break;
      case 'replace':
        read(document, path);
        document = add(remove(document, path), path, structuredClone(raw.value));
        break;
      case 'move': {
        if (typeof raw.from !== 'string') throw badRequest('json patch move needs "from"');
        const value = read(document, raw.from);
        document = add(remove(document, raw.from), path, value);
        break;
      }
      case 'copy':
        if (typeof raw.from !== 'string') throw badRequest('json patch copy needs "from"');
        document = add(document, path, structuredClone(read(document, raw.from)));
        break;
      case 'test':
        if (!isDeepStrictEqual(read(document, path), raw.value)) throw cannotApply(`json patch: test of ${path} failed`);
        break;
      default:
        throw badRequest(`json patch: unknown op ${JSON.stringify(op)}`);
    }
  }
  return document;
}
