/**
 * Merging options over their DEFAULTS, once, at construction: a key given as `undefined`
 * keeps its default (a plain spread would let it erase the default).
 */

/**
 * @example
 * withDefaults({ threads: 2, cache: false }, { cache: undefined }) // { threads: 2, cache: false }
 */
export function withDefaults<D extends object, O extends object>(defaults: D, options: O): D & O {
  const merged = { ...defaults } as Record<string, unknown>;
  for (const [key, value] of Object.entries(options)) if (value !== undefined) merged[key] = value;
  return merged as D & O;
}
