/**
 * Prompts and answers of agent tasks, the CPU work agent workers do: rendering templates,
 * telling the model what structure to answer in, extracting and validating that structure
 * from what it said, and the repair prompt when it did not. Pure functions.
 */
import type { FieldType, OutputSpec, TaskOutput } from './agent-contract.js';

const PLACEHOLDER = /\{\{\s*([\w.-]+)\s*\}\}/g;

/**
 * Fills `{{name}}` placeholders; returns the names no value was given for instead, so the
 * caller can fail the task saying which.
 *
 * @example
 * renderTemplate('Plan {{feature}} for {{client}}.', { feature: 'checkout', client: 'acme' })
 * // { ok: true, text: 'Plan checkout for acme.' }
 */
export function renderTemplate(
  template: string,
  vars: Readonly<Record<string, string>>,
): { ok: true; text: string } | { ok: false; missing: string[] } {
  const missing = new Set<string>();
  const text = template.replace(PLACEHOLDER, (whole, name: string) => {
    const value = vars[name];
    if (value === undefined) missing.add(name);
    return value ?? whole;
  });
  return missing.size === 0 ? { ok: true, text } : { ok: false, missing: [...missing] };
}

/** The sentence that tells the model how to answer; empty for free text. */
export function formatInstructions(output: OutputSpec): string {
  if (output.kind === 'text') return '';
  const keys = Object.entries(output.fields).map(([name, type]) => `${name} (${type})`);
  return `Reply with only a JSON object with the keys: ${keys.join(', ')}.`;
}

/** The answer parsed as asked, or why it could not be. */
export type ParsedOutput = { ok: true; output: TaskOutput } | { ok: false; reason: string };

/**
 * Extracts the answer: the text itself, or the first JSON object in it (inside a code fence or
 * prose, as models tend to wrap it), checked key by key against the fields asked for.
 */
export function parseOutput(output: OutputSpec, text: string): ParsedOutput {
  if (output.kind === 'text')
    return text.trim() === '' ? { ok: false, reason: 'the answer is empty' } : { ok: true, output: { kind: 'text', text } };
  const json = firstJsonObject(text);
  if (json === undefined) return { ok: false, reason: 'the answer holds no complete JSON object' };
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    return { ok: false, reason: `the JSON object does not parse (${error instanceof Error ? error.message : String(error)})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, reason: 'the answer is JSON but not an object' };
  const record = value as Record<string, unknown>;
  for (const [name, type] of Object.entries(output.fields)) {
    if (!(name in record)) return { ok: false, reason: `key ${name} is missing` };
    if (!hasType(record[name], type)) return { ok: false, reason: `key ${name} must be ${type}, got ${describe(record[name])}` };
  }
  return { ok: true, output: { kind: 'json', value: record } };
}

/** The follow-up that asks the model to answer again, saying what was wrong. */
export function repairPrompt(output: OutputSpec, reason: string): string {
  const again = output.kind === 'text' ? 'Answer again.' : `${formatInstructions(output)} Nothing else: no prose, no code fence.`;
  return `Your previous answer could not be used: ${reason}. ${again}`;
}

/** The first balanced `{…}` in a text, skipping braces inside JSON strings. */
function firstJsonObject(text: string): string | undefined {
  const start = text.indexOf('{');
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i += 1) {
    const char = text[i];
    if (inString) {
      if (char === '\\') i += 1;
      else if (char === '"') inString = false;
    } else if (char === '"') {
      inString = true;
    } else if (char === '{') {
      depth += 1;
    } else if (char === '}') {
      depth -= 1;
      if (depth === 0) return text.slice(start, i + 1);
    }
  }
  return undefined;
}

function hasType(value: unknown, type: FieldType): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'string[]':
      return Array.isArray(value) && value.every((item) => typeof item === 'string');
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
