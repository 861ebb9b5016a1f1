/**
 * What the CLI prints for people: aligned tables as kubectl prints them, ages (`45s`, `3m`,
 * `2h`, `4d`), the CRDs' printer-column JSONPaths evaluated on objects, money, and progress bars
 * for long waits (redrawn in place on a terminal, a new line per change otherwise).
 */
import type { PrinterColumn } from '../schema/crd.types.js';

/** Columns padded to their widest cell, separated by three spaces, headers upper-cased. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers.map((header) => header.toUpperCase()), ...rows];
  const widths = headers.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

/** How long ago an RFC 3339 time was, as kubectl's AGE column says it. */
export function age(timestamp: string | undefined, now: number = Date.now()): string {
  const at = Date.parse(timestamp ?? '');
  if (!Number.isFinite(at)) return '<unknown>';
  const seconds = Math.max(0, Math.floor((now - at) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

/** US dollars with cents, and more digits below a cent so that small costs still show. */
export function usd(value: number | undefined): string {
  const amount = value ?? 0;
  return `$${amount !== 0 && Math.abs(amount) < 0.01 ? amount.toFixed(4) : amount.toFixed(2)}`;
}

/**
 * Evaluates the JSONPath subset printer columns use: `.a.b`, `[n]`, and filters
 * `[?(@.key=="value")]`. Returns every match (filters may match several).
 */
export function jsonPath(object: unknown, path: string): unknown[] {
  let nodes: unknown[] = [object];
  const steps = path.match(/\.[^.[]+|\[\?\(@\.[^=]+==(?:"[^"]*"|'[^']*')\)\]|\[\d+\]/g) ?? [];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const node of nodes) {
      if (step.startsWith('.')) {
        const value = record(node)?.[step.slice(1)];
        if (value !== undefined) next.push(value);
      } else if (step.startsWith('[?')) {
        const [, key, quoted] = /^\[\?\(@\.([^=]+)==(.*)\)\]$/.exec(step) ?? [];
        const wanted = (quoted ?? '').slice(1, -1);
        if (Array.isArray(node)) next.push(...node.filter((item) => String(record(item)?.[key ?? '']) === wanted));
      } else if (Array.isArray(node)) {
        const item = node[Number(step.slice(1, -1))];
        if (item !== undefined) next.push(item);
      }
    }
    nodes = next;
  }
  return nodes;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** A printer column's cell for one object: dates as ages, missing values as `<none>`, as kubectl prints them. */
export function columnCell(object: unknown, column: PrinterColumn, now: number = Date.now()): string {
  const values = jsonPath(object, column.jsonPath);
  if (values.length === 0) return column.type === 'date' ? '<unknown>' : '';
  return values.map((value) => cell(value, column.type, now)).join(',');
}

function cell(value: unknown, type: string, now: number): string {
  if (type === 'date') return age(String(value), now);
  // Costs are sums of floats: 0.0049949999999999994 reads better as 0.005.
  if (type === 'number' && typeof value === 'number') return String(Number(value.toFixed(4)));
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** `[██████░░░░░░░░░░░░░░]  30%`. */
export function progressBar(percent: number, width = 20): string {
  const clamped = Math.max(0, Math.min(100, Math.round(percent)));
  const filled = Math.round((clamped / 100) * width);
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(clamped).padStart(3)}%`;
}

/**
 * A line that changes while the CLI waits: on a terminal it is redrawn in place, elsewhere
 * (pipes, CI logs, tests) each new text is printed once on a line of its own.
 */
export class LiveLine {
  private last = '';

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {}

  update(text: string): void {
    if (text === this.last) return;
    this.last = text;
    if (this.stream.isTTY) this.stream.write(`\r\u001b[2K${text}`);
    else this.stream.write(`${text}\n`);
  }

  /** Ends the line, so that what is printed next starts on a new one. */
  done(): void {
    if (this.stream.isTTY && this.last !== '') this.stream.write('\n');
    this.last = '';
  }
}
