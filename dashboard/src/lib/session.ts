/**
 * The signed-in token, kept in sessionStorage: it lives as long as the tab, is not sent with
 * every request like a cookie, and another tab signs in on its own.
 */
const KEY = 'troupe.token';

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function signIn(value: string): void {
  sessionStorage.setItem(KEY, value);
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}
