/**
 * Label selectors as list and watch requests carry them (`?labelSelector=`): equality
 * (`a=b`, `a==b`, `a!=b`), existence (`a`, `!a`) and sets (`a in (x,y)`, `a notin (x)`),
 * joined by commas, every requirement must hold.
 */
import { badRequest } from './api-status.js';

type Requirement = { key: string; op: 'in' | 'notin'; values: Set<string> } | { key: string; op: 'exists' | 'absent' };

/** A parsed selector: `matches(labels)` tells whether an object's labels satisfy it. */
export interface LabelSelector {
  matches(labels: Readonly<Record<string, string>> | undefined): boolean;
}

/** Splits on commas that are not inside a set's parentheses. */
function requirements(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth--;
    else if (text[i] === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((part) => part.trim()).filter((part) => part.length > 0);
}

function parseOne(text: string): Requirement {
  const set = /^([^\s!=()]+)\s+(in|notin)\s+\(([^()]*)\)$/.exec(text);
  if (set)
    return {
      key: set[1] as string,
      op: set[2] as 'in' | 'notin',
      values: new Set((set[3] as string).split(',').map((value) => value.trim())),
    };
  const equality = /^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(text);
  if (equality) return { key: equality[1] as string, op: equality[2] === '!=' ? 'notin' : 'in', values: new Set([equality[3] as string]) };
  const absent = /^!\s*([^\s!=()]+)$/.exec(text);
  if (absent) return { key: absent[1] as string, op: 'absent' };
  if (/^[^\s!=()]+$/.test(text)) return { key: text, op: 'exists' };
  throw badRequest(`unable to parse requirement: ${JSON.stringify(text)} in labelSelector`);
}

/** Parses `?labelSelector=`; an empty selector matches everything. */
export function parseLabelSelector(text: string): LabelSelector {
  const parsed = requirements(text).map(parseOne);
  return {
    matches(labels) {
      return parsed.every((requirement) => {
        const value = labels?.[requirement.key];
        switch (requirement.op) {
          case 'exists':
            return value !== undefined;
          case 'absent':
            return value === undefined;
          case 'in':
            return value !== undefined && requirement.values.has(value);
          case 'notin':
            return value === undefined || !requirement.values.has(value);
        }
      });
    },
  };
}
