import { describe, expect, it } from 'vitest';
import { growthOf } from './growth.js';
import type { Comparison, Measurement } from './measure.js';

const SIZES = [1_000, 10_000, 100_000];

function side(name: string, rate: number, extra: Partial<Measurement> = {}): Measurement {
  return { name, rate, unit: 'msg/s', ...extra };
}

/** One benchmark at the three sizes, its rates given as a function of the size. */
function series(benchmark: string, ours: (size: number) => Measurement, baseline: (size: number) => Measurement): Comparison[] {
  return SIZES.map((size) => ({ benchmark, size, ours: ours(size), baseline: baseline(size) }));
}

describe('growthOf', () => {
  it('calls a constant rate linear, a rate rising with the size flat, and a falling one worse than linear', () => {
    const growth = growthOf(
      series(
        'ping-pong',
        () => side('ours', 50_000),
        (size) => side('bare', 0.5 / size),
      ).concat(
        series(
          'pool',
          (size) => side('pool', size * 4),
          () => side('ideal', 1),
        ),
      ),
    );
    expect(growth.map(({ benchmark, name, verdict }) => [benchmark, name, verdict])).toEqual([
      ['ping-pong', 'ours', 'linear'],
      ['ping-pong', 'bare', 'worse than linear'],
      ['pool', 'pool', 'flat'],
      ['pool', 'ideal', 'linear'],
    ]);
    expect(growth[0]?.exponent).toBeCloseTo(1, 9);
    expect(growth[1]?.exponent).toBeCloseTo(2, 9);
    expect(growth[2]?.exponent).toBeCloseTo(0, 9);
  });

  it('reads a lower-is-better result as the cost itself', () => {
    const growth = growthOf(
      series(
        'failover',
        (size) => side('ours', 6 + size / 1e9, { lowerIsBetter: true, unit: 's' }),
        (size) => side('kafkajs', size / 1_000, { lowerIsBetter: true, unit: 's' }),
      ),
    );
    expect(growth.map((g) => g.verdict)).toEqual(['flat', 'linear']);
  });

  it('fits a cost growing as size^0.5 as sub-linear, and counts a side shared by two rows of a size once', () => {
    const comparisons = SIZES.flatMap((size) => [
      { benchmark: 'fan-out', size, ours: side('ours', Math.sqrt(size)), baseline: side('bare', 10) },
      { benchmark: 'fan-out', size, ours: side('ours', Math.sqrt(size)), baseline: side('nact', 10) },
    ]);
    const [ours] = growthOf(comparisons);
    expect(ours).toMatchObject({ name: 'ours', sizes: SIZES, verdict: 'sub-linear' });
    expect(ours?.exponent).toBeCloseTo(0.5, 9);
  });

  it('gives no exponent for one size, or when a size measured nothing', () => {
    const one = growthOf([{ benchmark: 'quick', size: 500, ours: side('ours', 10), baseline: side('socket.io', 5) }]);
    expect(one.map((g) => g.exponent)).toEqual([undefined, undefined]);
    const none = growthOf(
      series(
        'ws',
        () => side('ours', 10),
        (size) => side('socket.io', size === 10_000 ? 0 : 5),
      ),
    );
    expect(none.map((g) => g.verdict)).toEqual(['linear', undefined]);
  });
});
