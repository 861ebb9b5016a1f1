/**
 * `troupe token (--tenant NS | --role admin|sre) [--sub NAME] [--ttl 12h]`: prints a bearer token
 * for the dashboard, the gateway's API and the runtime's gRPC API, signed with
 * TROUPE_TOKEN_SECRET — the secret every runtime node and gateway checks tokens with (the Helm
 * chart keeps it in the gateway's auth Secret). A client's token sees namespace NS only; `admin`
 * sees and does everything; `sre` sees every namespace and may scale pools.
 */
import { TOKENS_DEFAULTS, TokenError, TokenErrorCode, Tokens, type PlatformRole, type TokenSubject } from '@troupe/proto';
import { ExitCode, usage } from './exit-codes.js';

export interface TokenCommandOptions {
  /** TROUPE_TOKEN_SECRET; trimmed, as the runtime trims it. */
  secret: string | undefined;
  /** The namespace a client's token is for; exactly one of tenant and role. */
  tenant: string | undefined;
  role: string | undefined;
  /** Who the token names (approvals record it); default `client@<tenant>`, or the role. */
  sub: string | undefined;
  /** How long the token is valid (default 12 h). */
  ttlMs: number | undefined;
  json: boolean;
  out: NodeJS.WritableStream;
}

const ROLES: readonly string[] = ['admin', 'sre'] satisfies PlatformRole[];

export function token(options: TokenCommandOptions): ExitCode {
  const secret = options.secret?.trim();
  if (!secret) {
    throw usage(
      "TROUPE_TOKEN_SECRET is not set: export the secret the runtime and the gateways check tokens with, e.g. a Helm release's: kubectl -n troupe-system get secret troupe-gateway-auth -o jsonpath='{.data.token-secret}' | base64 -d",
    );
  }
  const { tenant, role } = options;
  if ((tenant === undefined) === (role === undefined))
    throw usage('token needs one of --tenant NS (a client of namespace NS) and --role admin|sre');
  if (role !== undefined && !ROLES.includes(role)) throw usage(`--role must be admin or sre, got "${role}"`);
  const ttlSeconds = Math.round((options.ttlMs ?? TOKENS_DEFAULTS.ttlSeconds * 1000) / 1000);
  if (ttlSeconds < 1) throw usage('--ttl must be at least 1s');
  const subject: TokenSubject =
    tenant !== undefined
      ? { sub: options.sub ?? `client@${tenant}`, tenant }
      : { sub: options.sub ?? (role as string), role: role as PlatformRole };
  let signed: string;
  let tokens: Tokens;
  try {
    tokens = new Tokens({ secret, ttlSeconds });
    signed = tokens.sign(subject);
  } catch (error) {
    if (!(error instanceof TokenError)) throw error;
    // Which input is wrong: the secret from the environment, or the claims from the flags.
    throw usage(error.code === TokenErrorCode.InvalidOptions ? `TROUPE_TOKEN_SECRET: ${error.message}` : error.message);
  }
  if (options.json) {
    const claims = tokens.verify(signed);
    options.out.write(`${JSON.stringify({ token: signed, ...claims, expiresAt: new Date(claims.exp * 1000).toISOString() }, null, 2)}\n`);
  } else {
    options.out.write(`${signed}\n`);
  }
  return ExitCode.Ok;
}
