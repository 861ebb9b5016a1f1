/**
 * Go's `net/url.ParseRequestURI`, the parser behind the Kubernetes CEL functions `isURL` and
 * `url`, for the parts those rules read (scheme and host). WHATWG's `URL` accepts and normalises
 * differently (`http:foo`, spaces, backslashes), so it cannot stand in for it.
 */
import { goQuote } from './field-error.js';

/** The scheme (lowercased) and host (with port, IPv6 brackets kept) of a URL, or why Go refuses it. */
export type GoUrl = { ok: true; scheme: string; host: string } | { ok: false; error: string };

/** Parses `raw` as Go's url.ParseRequestURI does: an absolute URI or an absolute path. */
export function parseRequestUri(raw: string): GoUrl {
  const fail = (problem: string): GoUrl => ({ ok: false, error: `parse ${goQuote(raw)}: ${problem}` });
  if (/[\x00-\x1f\x7f]/.test(raw)) return fail('net/url: invalid control character in URL');
  if (raw === '') return fail('empty url');
  if (raw === '*') return { ok: true, scheme: '', host: '' };
  const split = splitScheme(raw);
  if (split === undefined) return fail('missing protocol scheme');
  const scheme = split.scheme.toLowerCase();
  let rest = split.rest;
  rest = rest.endsWith('?') && rest.indexOf('?') === rest.length - 1 ? rest.slice(0, -1) : (rest.split('?', 1)[0] ?? '');
  if (!rest.startsWith('/')) {
    // A scheme followed by a rootless path is an opaque URI (mailto:x); without a scheme it is relative.
    return scheme === '' ? fail('invalid URI for request') : { ok: true, scheme, host: '' };
  }
  let host = '';
  if (scheme !== '' && rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    const authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    rest = slash < 0 ? '' : rest.slice(slash);
    const at = authority.lastIndexOf('@');
    if (at >= 0) {
      const userinfo = authority.slice(0, at);
      if (!/^[-A-Za-z0-9._:~!$&'()*+,;=%@]*$/.test(userinfo)) return fail('net/url: invalid userinfo');
      const escapeError = badEscape(userinfo, false);
      if (escapeError !== undefined) return fail(escapeError);
    }
    const parsed = parseHost(authority.slice(at + 1));
    if (!parsed.ok) return fail(parsed.error);
    host = parsed.host;
  }
  const escapeError = badEscape(rest, false);
  return escapeError === undefined ? { ok: true, scheme, host } : fail(escapeError);
}

/** getScheme of net/url: undefined for a leading ':' (Go's "missing protocol scheme"). */
function splitScheme(raw: string): { scheme: string; rest: string } | undefined {
  for (let i = 0; i < raw.length; i++) {
    const char = raw[i] ?? '';
    if (/[A-Za-z]/.test(char)) continue;
    if (/[0-9+.-]/.test(char)) {
      if (i === 0) return { scheme: '', rest: raw };
      continue;
    }
    if (char === ':') return i === 0 ? undefined : { scheme: raw.slice(0, i), rest: raw.slice(i + 1) };
    return { scheme: '', rest: raw };
  }
  return { scheme: '', rest: raw };
}

function parseHost(host: string): { ok: true; host: string } | { ok: false; error: string } {
  let portFrom = host.lastIndexOf(':');
  if (host.startsWith('[')) {
    const close = host.lastIndexOf(']');
    if (close < 0) return { ok: false, error: "missing ']' in host" };
    portFrom = close + 1;
  }
  if (portFrom >= 0) {
    const colonPort = host.slice(portFrom);
    if (colonPort !== '' && !/^:[0-9]*$/.test(colonPort)) return { ok: false, error: `invalid port ${goQuote(colonPort)} after host` };
  }
  const escapeError = badEscape(host, true);
  if (escapeError !== undefined) return { ok: false, error: escapeError };
  // Characters a host may hold unescaped: alphanumerics, unreserved marks and sub-delimiters; non-ASCII passes.
  const invalid = /[^-A-Za-z0-9_.~!$&'()*+,;=:[\]<>"%\u0080-\u{10ffff}]/u.exec(host);
  if (invalid !== null) return { ok: false, error: `invalid character ${goQuote(invalid[0])} in host name` };
  return { ok: true, host: decodeEscapes(host) };
}

/** Go's unescape checks: a '%' needs two hex digits, and in a host only escapes non-ASCII bytes (or %25). */
function badEscape(text: string, inHost: boolean): string | undefined {
  for (let i = text.indexOf('%'); i >= 0; i = text.indexOf('%', i + 1)) {
    const escape = text.slice(i, i + 3);
    if (!/^%[0-9A-Fa-f]{2}$/.test(escape)) return `invalid URL escape ${goQuote(escape)}`;
    if (inHost && parseInt(escape.slice(1, 2), 16) < 8 && escape !== '%25') return `invalid URL escape ${goQuote(escape)}`;
  }
  return undefined;
}

function decodeEscapes(host: string): string {
  if (!host.includes('%')) return host;
  const bytes = host
    .split(/(%[0-9A-Fa-f]{2})/)
    .flatMap((part) => (/^%[0-9A-Fa-f]{2}$/.test(part) ? [parseInt(part.slice(1), 16)] : [...Buffer.from(part)]));
  return Buffer.from(bytes).toString('utf8');
}
