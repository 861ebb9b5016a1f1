/**
 * How cost grows with work, computed from one benchmark run at several sizes. The cost of a
 * size is the time its work takes at the measured rate (size ÷ rate), or the measured time
 * itself for a lower-is-better result; the exponent k of cost ∝ size^k is fitted by least
 * squares over log cost against log size, and says whether cost grows linearly or worse.
 */
import type { Comparison, Measurement } from './measure.js';

/** What the exponent means: `flat` is k below 0.1, `linear` is k within 0.1 of 1. */
export type GrowthVerdict = 'flat' | 'sub-linear' | 'linear' | 'worse than linear';

/** The growth of one side (ours or a baseline) of one benchmark. */
export interface Growth {
  benchmark: string;
  /** The side's name (Measurement.name). */
  name: string;
  /** The sizes it ran at, ascending. */
  sizes: number[];
  /** k of cost ∝ size^k; undefined with fewer than two sizes, or when a size has no positive result. */
  exponent: number | undefined;
  verdict: GrowthVerdict | undefined;
}

/** Below this the cost does not grow with the work at all; within it of 1 it grows in proportion. */
const TOLERANCE = 0.1;

/** The time the work of `size` takes at the measured rate, or the measured time or cost itself. */
function cost(size: number, measurement: Measurement): number {
  return measurement.lowerIsBetter ? measurement.rate : size / measurement.rate;
}

/** The least-squares slope of log cost against log size. */
function exponentOf(points: readonly (readonly [number, number])[]): number {
  const xs = points.map(([size]) => Math.log(size));
  const ys = points.map(([, value]) => Math.log(value));
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const [mx, my] = [mean(xs), mean(ys)];
  let covariance = 0;
  let variance = 0;
  xs.forEach((x, i) => {
    covariance += (x - mx) * ((ys[i] ?? 0) - my);
    variance += (x - mx) ** 2;
  });
  return covariance / variance;
}

function verdictOf(exponent: number): GrowthVerdict {
  if (exponent < TOLERANCE) return 'flat';
  if (exponent < 1 - TOLERANCE) return 'sub-linear';
  if (exponent <= 1 + TOLERANCE) return 'linear';
  return 'worse than linear';
}

/**
 * One Growth per side of each benchmark, in the order the comparisons name them (ours first).
 * A side that is the same in several rows of a size (ours against two baselines) counts once.
 */
export function growthOf(comparisons: readonly Comparison[]): Growth[] {
  const series = new Map<string, { benchmark: string; name: string; points: Map<number, Measurement> }>();
  for (const comparison of comparisons) {
    for (const side of [comparison.ours, comparison.baseline]) {
      const key = `${comparison.benchmark}\u0000${side.name}`;
      const entry = series.get(key) ?? { benchmark: comparison.benchmark, name: side.name, points: new Map<number, Measurement>() };
      if (!entry.points.has(comparison.size)) entry.points.set(comparison.size, side);
      series.set(key, entry);
    }
  }
  return [...series.values()].map(({ benchmark, name, points }) => {
    const sizes = [...points.keys()].sort((a, b) => a - b);
    const costs = sizes.map((size) => [size, cost(size, points.get(size) as Measurement)] as const);
    const fit = sizes.length >= 2 && costs.every(([, value]) => Number.isFinite(value) && value > 0);
    const exponent = fit ? exponentOf(costs) : undefined;
    return { benchmark, name, sizes, exponent, verdict: exponent === undefined ? undefined : verdictOf(exponent) };
  });
}
