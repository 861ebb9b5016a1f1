/** What one side of a comparison achieved. */
export interface Measurement {
  /** What ran, e.g. "troupe local actors" or "nact 7.6.2". */
  name: string;
  /** The work rate, higher is better (messages/s, updates/s …). */
  rate: number;
  unit: string;
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

/** ours ÷ baseline for a rate (higher is better), written like `0.83x`. */
export function ratio(comparison: Comparison): string {
  const value = comparison.ours.rate / comparison.baseline.rate;
  // Two decimals hide a ratio far below 1 (a durable path against an in-memory one) as 0.00x.
  return `${value >= 0.1 ? value.toFixed(2) : value.toPrecision(2)}x`;
}
