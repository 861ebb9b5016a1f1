/**
 * The dashboard's static build, held in memory: a few hundred kilobytes, read and compressed
 * once at start so that serving a file is a map lookup. Hashed assets under `_app/immutable/`
 * are cached for a year; everything else revalidates by ETag. Paths without a file extension
 * that match no file get `index.html`, so client-side routes survive a reload.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.webmanifest', '.map', '.svg', '.txt']);
const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

/** One servable file with its precomputed headers and encodings. */
export interface StaticFile {
  contentType: string;
  cacheControl: string;
  etag: string;
  identity: Buffer;
  gzip: Buffer | undefined;
  br: Buffer | undefined;
  /** Extra headers (the CSP of HTML pages). */
  headers: [string, string][];
}

/** A file and the encoding to send it in. */
export interface StaticHit {
  file: StaticFile;
  body: Buffer;
  encoding: 'br' | 'gzip' | undefined;
}

/** The static build in memory, looked up by URL path. */
export class StaticFiles {
  private constructor(
    private readonly files: Map<string, StaticFile>,
    private readonly fallback: StaticFile | undefined,
  ) {}

  /** Reads every file under `dir`; fails with Unavailable when `dir` holds no index.html. */
  static async load(dir: string): Promise<StaticFiles> {
    const files = new Map<string, StaticFile>();
    let names: string[];
    try {
      names = (await readdir(dir, { recursive: true, withFileTypes: true }))
        .filter((entry) => entry.isFile())
        .map((entry) => join(entry.parentPath, entry.name));
    } catch (cause) {
      throw new RuntimeError(
        RuntimeErrorCode.Unavailable,
        `the dashboard build ${dir} cannot be read; build it with \`npm run build -w dashboard\``,
        { cause },
      );
    }
    for (const name of names) {
      const path = `/${relative(dir, name).split(sep).join('/')}`;
      files.set(path, prepare(path, await readFile(name)));
    }
    const index = files.get('/index.html');
    if (index === undefined) throw new RuntimeError(RuntimeErrorCode.Unavailable, `the dashboard build ${dir} has no index.html`);
    return new StaticFiles(files, index);
  }

  /** The file for a URL path, or the app shell for a client-side route, or undefined (a 404). */
  lookup(path: string, acceptEncoding: string): StaticHit | undefined {
    const file =
      this.files.get(path === '/' ? '/index.html' : path) ??
      this.files.get(`${path}.html`) ??
      (extname(path) === '' ? this.fallback : undefined);
    if (file === undefined) return undefined;
    if (file.br !== undefined && /\bbr\b/.test(acceptEncoding)) return { file, body: file.br, encoding: 'br' };
    if (file.gzip !== undefined && /\bgzip\b/.test(acceptEncoding)) return { file, body: file.gzip, encoding: 'gzip' };
    return { file, body: file.identity, encoding: undefined };
  }
}

function prepare(path: string, content: Buffer): StaticFile {
  const extension = extname(path);
  const compress = COMPRESSIBLE.has(extension) && content.length > 1024;
  const gzip = compress ? gzipSync(content, { level: 9 }) : undefined;
  const br = compress ? brotliCompressSync(content, { params: { [constants.BROTLI_PARAM_QUALITY]: 9 } }) : undefined;
  return {
    contentType: CONTENT_TYPES[extension] ?? 'application/octet-stream',
    cacheControl: path.startsWith('/_app/immutable/') ? IMMUTABLE : REVALIDATE,
    etag: `"${createHash('sha256').update(content).digest('base64url').slice(0, 22)}"`,
    identity: content,
    gzip: gzip !== undefined && gzip.length < content.length ? gzip : undefined,
    br: br !== undefined && br.length < content.length ? br : undefined,
    headers: extension === '.html' ? [['Content-Security-Policy', contentSecurityPolicy(content.toString('utf8'))]] : [],
  };
}

/**
 * A CSP that allows the page's own inline bootstrap scripts by hash and nothing else inline:
 * SvelteKit's app shell starts with an inline module script, so 'self' alone would block it.
 */
function contentSecurityPolicy(html: string): string {
  const hashes = [...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)]
    .map(
      (match) =>
        `'sha256-${createHash('sha256')
          .update(match[1] ?? '')
          .digest('base64')}'`,
    )
    .join(' ');
  return [
    "default-src 'self'",
    `script-src 'self'${hashes === '' ? '' : ` ${hashes}`}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "worker-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
  ].join('; ');
}
