/**
 * Liveness and readiness of a node, as Kubernetes probes them. Liveness (`/healthz`): the process
 * answers and its event loop has not stalled since the last probe. Readiness (`/readyz`): the
 * node has started, is not shutting down, and each dependency answers a real request now — the
 * broker, the store, Redis — each check bounded by a timeout. Both report every check by name.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { withTimeout } from '../llm/resilience.js';

/** One dependency's check: resolves when it answered, rejects with why not. */
export interface ReadinessCheck {
  /** Names the dependency in the report, e.g. `kafka`. */
  name: string;
  check(): Promise<void>;
}

/** How one check went. */
export interface CheckResult {
  name: string;
  ok: boolean;
  /** How long it took, in ms. */
  ms: number;
  /** Why it failed. */
  error?: string;
}

/** A probe's answer: the HTTP status it maps to, and the JSON body. */
export interface ProbeReport {
  ok: boolean;
  body: { status: string; checks: CheckResult[] };
}

export interface HealthOptions {
  /** Each readiness check is failed after this long, in ms (default 2,000). */
  checkTimeoutMs: number;
  /** Liveness fails when the event loop stalled this long since the previous probe, in ms (default 5,000). */
  maxEventLoopDelayMs: number;
}

export const HEALTH_DEFAULTS = {
  checkTimeoutMs: 2_000,
  maxEventLoopDelayMs: 5_000,
} as const satisfies HealthOptions;

type State = 'starting' | 'ready' | 'stopping';

/**
 * @example
 * const health = new Health({ checkTimeoutMs: 1_000 });
 * health.addCheck({ name: 'redis', check: () => services.responseCache.get('probe').then(() => undefined) });
 * health.started();
 * const { ok, body } = await health.readiness();
 */
export class Health {
  private readonly options: HealthOptions;
  private readonly checks: ReadinessCheck[] = [];
  private readonly loop: IntervalHistogram;
  private state: State = 'starting';

  constructor(options: Partial<HealthOptions> = {}) {
    this.options = { ...HEALTH_DEFAULTS, ...options };
    for (const [key, value] of Object.entries(this.options)) {
      if (!Number.isInteger(value) || value <= 0) {
        throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `Health option ${key} must be a positive integer, got ${value}`);
      }
    }
    this.loop = monitorEventLoopDelay({ resolution: 20 });
    this.loop.enable();
  }

  addCheck(check: ReadinessCheck): void {
    this.checks.push(check);
  }

  /** Everything has started: readiness now runs the checks. */
  started(): void {
    if (this.state === 'starting') this.state = 'ready';
  }

  /** Shutdown began: readiness fails from now on, so that traffic moves elsewhere while the node drains. */
  stopping(): void {
    this.state = 'stopping';
  }

  /** The process answers; it is live unless its event loop stalled longer than allowed since the last call. */
  liveness(): ProbeReport {
    const stalledMs = this.loop.max / 1e6;
    this.loop.reset();
    const ok = stalledMs <= this.options.maxEventLoopDelayMs;
    const loop: CheckResult = {
      name: 'event-loop',
      ok,
      ms: Math.round(stalledMs),
      ...(ok ? {} : { error: `the event loop stalled for ${Math.round(stalledMs)} ms (limit ${this.options.maxEventLoopDelayMs} ms)` }),
    };
    return { ok, body: { status: ok ? 'alive' : 'stalled', checks: [loop] } };
  }

  /** Runs every check at once; ready when the node has started, is not stopping, and every check passed. */
  async readiness(): Promise<ProbeReport> {
    if (this.state !== 'ready') return { ok: false, body: { status: this.state, checks: [] } };
    const checks = await Promise.all(this.checks.map((check) => this.run(check)));
    const ok = checks.every((check) => check.ok) && this.state === 'ready';
    return { ok, body: { status: ok ? 'ready' : this.state === 'ready' ? 'not ready' : this.state, checks } };
  }

  /** Stops watching the event loop. */
  close(): void {
    this.loop.disable();
  }

  private async run({ name, check }: ReadinessCheck): Promise<CheckResult> {
    const started = performance.now();
    try {
      await withTimeout(check(), this.options.checkTimeoutMs);
      return { name, ok: true, ms: Math.round(performance.now() - started) };
    } catch (error) {
      return { name, ok: false, ms: Math.round(performance.now() - started), error: toError(error).message };
    }
  }
}
