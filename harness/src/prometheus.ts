/**
 * Test support: a parser of the Prometheus text exposition format (0.0.4), which prom-client
 * writes but cannot read, so that tests scrape /metrics as Prometheus would and assert on
 * families and samples. A line it cannot read fails the parse, naming the line.
 */
import { HarnessError, HarnessErrorCode } from './errors.js';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/** One sample line: `name{labels} value`. */
export interface Sample {
  /** The sample's own name, e.g. `troupe_llm_request_duration_seconds_bucket`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A metric family: its HELP and TYPE, and the samples that follow them. */
export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+-?\\d+)?$`);
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;
/** The samples a histogram or summary family writes besides its own name. */
const SUFFIXES = ['_bucket', '_sum', '_count'];

function refuse(lineNumber: number, line: string, problem: string): HarnessError {
  return new HarnessError(HarnessErrorCode.InvalidOutput, `metrics line ${lineNumber} ${problem}: ${JSON.stringify(line)}`);
}

function unescape(value: string): string {
  return value.replace(/\\(.)/g, (_, char: string) => (char === 'n' ? '\n' : char));
}

/** A value as Prometheus reads it (Go's ParseFloat): special values in any case, so prom-client's `Nan` too. */
function parseValue(text: string): number | undefined {
  if (/^\+?inf(inity)?$/i.test(text)) return Number.POSITIVE_INFINITY;
  if (/^-inf(inity)?$/i.test(text)) return Number.NEGATIVE_INFINITY;
  if (/^nan$/i.test(text)) return Number.NaN;
  const value = Number(text);
  return text.trim() === '' || Number.isNaN(value) ? undefined : value;
}

/**
 * The families of an exposition, by name.
 *
 * @example
 * const families = parsePrometheus(await (await fetch(`${url}/metrics`)).text());
 * families.get('troupe_actor_turns_total')?.samples;
 */
export function parsePrometheus(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const family = (name: string) => {
    let found = families.get(name);
    if (found === undefined) {
      found = { name, help: '', type: 'untyped', samples: [] };
      families.set(name, found);
    }
    return found;
  };
  let current: MetricFamily | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    const lineNumber = index + 1;
    if (line === '') return;
    if (line.startsWith('#')) {
      const [, keyword, name, ...rest] = line.split(/\s+/);
      if (keyword !== 'HELP' && keyword !== 'TYPE') return;
      if (name === undefined || !new RegExp(`^${NAME}$`).test(name)) throw refuse(lineNumber, line, `names no metric`);
      current = family(name);
      if (keyword === 'HELP') current.help = unescape(line.slice(line.indexOf(name) + name.length).trim());
      else {
        const type = rest[0] as MetricType;
        if (!TYPES.includes(type)) throw refuse(lineNumber, line, `has an unknown type`);
        current.type = type;
      }
      return;
    }
    const match = SAMPLE.exec(line);
    if (match === null) throw refuse(lineNumber, line, 'is not a sample');
    const [, name = '', labelText = '', valueText = ''] = match;
    const labels: Record<string, string> = {};
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < labelText.length) {
      const start = LABEL.lastIndex;
      const label = LABEL.exec(labelText);
      if (label === null || LABEL.lastIndex === start) throw refuse(lineNumber, line, 'has malformed labels');
      labels[label[1]!] = unescape(label[2]!);
    }
    const value = parseValue(valueText);
    if (value === undefined) throw refuse(lineNumber, line, 'has no numeric value');
    const owner =
      current !== undefined && (name === current.name || SUFFIXES.some((suffix) => name === `${current!.name}${suffix}`))
        ? current
        : family(name);
    owner.samples.push({ name, labels, value });
  });
  return families;
}

/**
 * The value of the family's sample named `name` (default: the family's own name) whose labels
 * include `labels`; undefined when there is none. Throws when several match.
 */
export function sampleValue(
  families: Map<string, MetricFamily>,
  family: string,
  labels: Record<string, string> = {},
  name: string = family,
): number | undefined {
  const matching = (families.get(family)?.samples ?? []).filter(
    (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  if (matching.length > 1) {
    throw new HarnessError(
      HarnessErrorCode.InvalidOutput,
      `${matching.length} samples of ${name} match ${JSON.stringify(labels)}; name more labels`,
    );
  }
  return matching[0]?.value;
}
