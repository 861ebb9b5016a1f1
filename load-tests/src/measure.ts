/** What one side of a comparison achieved. */
export interface Measurement {
  /** What ran, the same at every size, e.g. "troupe actors (in-process)" or "nact 7.6.2". */
  name: string;
  /** What this run of it was where that changes with the size (the rate it held, CPU per call …); printed after the name. */
  detail?: string;
  /**
   * The result: a rate of work, higher is better (messages/s, updates/s …); or, with
   * `lowerIsBetter`, a time or cost in `unit` (the failover time, in s).
   */
  rate: number;
  unit: string;
  lowerIsBetter?: boolean;
  /** Latency percentiles in microseconds, where the scenario measures them. */
  p50Micros?: number;
  p99Micros?: number;
}

/** One row of the report: ours against a baseline, run side by side in the same process. */
export interface Comparison {
  benchmark: string;
  /** The amount of work, so the report shows how cost grows with it. */
  size: number;
  ours: Measurement;
  baseline: Measurement;
}

/** Nearest-rank percentile of latencies in milliseconds, returned in microseconds. */
export function percentileMicros(latenciesMs: Float64Array, p: number): number {
  const sorted = Float64Array.from(latenciesMs).sort();
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return (sorted[index] ?? 0) * 1000;
}

/**
 * How many times better than the baseline ours did, written like `0.83x`: ours ÷ baseline of a
 * rate, baseline ÷ ours of a time, so that above 1 is better either way.
 */
export function ratio(comparison: Comparison): string {
  const { ours, baseline } = comparison;
  const value = ours.lowerIsBetter ? baseline.rate / ours.rate : ours.rate / baseline.rate;
  if (!Number.isFinite(value)) return '—';
  // Two decimals hide a ratio far below 1 (a durable path against an in-memory one) as 0.00x.
  return `${value >= 0.1 ? value.toFixed(2) : value.toPrecision(2)}x`;
}
