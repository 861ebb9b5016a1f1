/**
 * The role table every entry point applies: what an admin, an SRE and a client may do, in their
 * own namespace and in another tenant's, and how a refusal reads.
 */
import { describe, expect, it } from 'vitest';
import { RuntimeErrorCode } from '../errors.js';
import { authorize, identityOf, type Action } from './access.js';
import { Tokens } from './tokens.js';

const tokens = new Tokens({ secret: 'access-test-secret-of-at-least-32-bytes' });
const identity = (claims: Parameters<Tokens['sign']>[0]) => identityOf(tokens.verify(tokens.sign(claims)));
const admin = identity({ sub: 'root', role: 'admin' });
const sre = identity({ sub: 'oncall', role: 'sre' });
const acme = identity({ sub: 'cto@acme', tenant: 'acme' });

const ACTIONS: Action[] = ['read', 'approve', 'scale', 'submit', 'cancel'];

function refusal(caller: typeof admin, action: Action, namespace: string): string | undefined {
  try {
    authorize(caller, action, namespace);
    return undefined;
  } catch (error) {
    expect(error).toMatchObject({ code: RuntimeErrorCode.PermissionDenied });
    return (error as Error).message;
  }
}

describe('the roles', () => {
  it('let each role do what its row of the table says, in its own namespace', () => {
    const allowed = (caller: typeof admin) => ACTIONS.filter((action) => refusal(caller, action, 'acme') === undefined);
    expect(allowed(admin)).toEqual(['read', 'approve', 'scale', 'submit', 'cancel']);
    expect(allowed(sre)).toEqual(['read', 'scale']);
    expect(allowed(acme)).toEqual(['read', 'approve']);
  });

  it('keep a client out of every other namespace, naming it, before looking at the action', () => {
    for (const action of ACTIONS) expect(refusal(acme, action, 'globex')).toBe('a token of tenant acme may not read namespace globex');
    expect(refusal(admin, 'cancel', 'globex')).toBeUndefined();
    expect(refusal(sre, 'read', 'globex')).toBeUndefined();
  });

  it('name the roles that may, when a role may not', () => {
    expect(refusal(sre, 'approve', 'acme')).toBe('role sre may not approve gates; a token of role admin or client may');
    expect(refusal(acme, 'scale', 'acme')).toBe('role client may not scale pools; a token of role admin or sre may');
    expect(refusal(sre, 'submit', 'acme')).toBe('role sre may not submit projects; a token of role admin may');
    expect(refusal(acme, 'cancel', 'acme')).toBe('role client may not cancel projects; a token of role admin may');
  });

  it('tell the dashboard what to offer each identity', () => {
    expect(acme).toMatchObject({ role: 'client', tenant: 'acme', can: { allNamespaces: false, approve: true, scale: false } });
    expect(sre).toMatchObject({ role: 'sre', tenant: null, can: { allNamespaces: true, approve: false, scale: true } });
    expect(admin).toMatchObject({ role: 'admin', tenant: null, can: { allNamespaces: true, approve: true, scale: true } });
  });
});
