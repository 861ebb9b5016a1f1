/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection: a
 * candidate takes the Lease when it is free or its holder has not renewed it for a whole lease
 * duration (measured on the candidate's own clock from when it last saw the record change, so
 * clock skew between replicas does not matter); the leader renews it every retry period and
 * gives up leading when it could not renew within the renew deadline — before any other
 * replica may take over, as the renew deadline is shorter than the lease duration.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { OperatorError, OperatorErrorCode, checkOption, isNotFound, toError } from '../errors.js';
import type { KubeClient } from './client.js';
import { systemClock, type Clock } from './clock.js';
import { silentLogger, type Logger } from './log.js';
import { Leases } from './resources.js';
import type { Lease } from './types.js';

export interface LeaderElectorOptions {
  client: KubeClient;
  /** Namespace and name of the Lease. */
  namespace: string;
  name: string;
  /** This replica's name in `spec.holderIdentity`; unique per replica (the pod name). */
  identity: string;
  /** How long a Lease that is not renewed keeps others out (default 15 s). */
  leaseDurationMs: number;
  /** How long the leader keeps trying to renew before it stops leading (default 10 s). */
  renewDeadlineMs: number;
  /** How often candidates try to acquire and the leader renews (default 2 s). */
  retryPeriodMs: number;
  clock: Clock;
  log: Logger;
}

export const LEADER_ELECTOR_DEFAULTS = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  clock: systemClock,
  log: silentLogger,
} as const satisfies Partial<LeaderElectorOptions>;

/** Why `hold` returned. */
export type LeadershipEnd = 'stopped' | 'lost';

/**
 * @example
 * const elector = new LeaderElector({ client, namespace: 'troupe-system', name: 'troupe-operator', identity: podName });
 * if (await elector.acquire()) {
 *   startControllers();
 *   const end = await elector.hold();   // 'lost' or, after elector.stop(), 'stopped'
 *   await stopControllers();
 *   if (end === 'stopped') await elector.release();
 * }
 */
export class LeaderElector {
  readonly options: LeaderElectorOptions;
  private readonly stopping = new AbortController();
  /** The record as last read, and when (on our clock) it last changed. */
  private observed: { key: string; at: number } | undefined;
  private leading = false;

  constructor(options: Pick<LeaderElectorOptions, 'client' | 'namespace' | 'name' | 'identity'> & Partial<LeaderElectorOptions>) {
    this.options = { ...LEADER_ELECTOR_DEFAULTS, ...options };
    validate(this.options);
  }

  /** True while this replica holds the Lease. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Tries every retry period until this replica holds the Lease (true) or `stop` was called (false). */
  async acquire(): Promise<boolean> {
    const { log, retryPeriodMs, name } = this.options;
    log.info('waiting for leadership', { lease: name });
    while (!this.stopping.signal.aborted) {
      if ((await this.tryAcquireOrRenew()) === 'held') {
        this.leading = true;
        log.info('became leader', { lease: name });
        return true;
      }
      await this.pause(retryPeriodMs * (1 + Math.random() * 0.2));
    }
    return false;
  }

  /** Renews the Lease until `stop` is called ('stopped') or renewing failed for the renew deadline ('lost'). */
  async hold(): Promise<LeadershipEnd> {
    const { clock, renewDeadlineMs, retryPeriodMs, log, name } = this.options;
    let renewedAt = clock.now();
    while (!this.stopping.signal.aborted) {
      await this.pause(retryPeriodMs);
      if (this.stopping.signal.aborted) break;
      const attempt = await this.tryAcquireOrRenew();
      if (attempt === 'held') {
        renewedAt = clock.now();
      } else if (attempt === 'taken' || clock.now() - renewedAt >= renewDeadlineMs) {
        this.leading = false;
        log.error('lost leadership', {
          lease: name,
          why: attempt === 'taken' ? 'another replica holds the lease' : 'could not renew within the renew deadline',
        });
        return 'lost';
      }
    }
    return 'stopped';
  }

  /** Makes `acquire` and `hold` return; the Lease stays held until `release`. */
  stop(): void {
    this.stopping.abort();
  }

  /** Gives the Lease up so that another replica takes over without waiting out the lease duration. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    const { client, namespace, name, identity, log } = this.options;
    try {
      const lease = await client.get(Leases, namespace, name);
      if (lease?.spec.holderIdentity !== identity) return;
      const now = microTime(this.options.clock.now());
      await client.replace(Leases, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
      });
      log.info('released leadership', { lease: name });
    } catch (error) {
      // The Lease then simply expires after its duration.
      log.warn('could not release the lease', { lease: name, error: toError(error).message });
    }
  }

  /**
   * One attempt: 'held' when this replica holds the Lease afterwards, 'taken' when another
   * replica holds it, 'failed' when the API server could not be asked or another write won.
   */
  private async tryAcquireOrRenew(): Promise<'held' | 'taken' | 'failed'> {
    const { client, namespace, name, identity, clock, leaseDurationMs, log } = this.options;
    const now = clock.now();
    const spec = (transitions: number, acquireTime: string | null | undefined): Lease['spec'] => ({
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
      acquireTime: acquireTime ?? microTime(now),
      renewTime: microTime(now),
      leaseTransitions: transitions,
    });
    try {
      const lease = await client.get(Leases, namespace, name);
      if (lease === undefined) {
        await client.create(Leases, { metadata: { name, namespace }, spec: spec(0, undefined) });
        return 'held';
      }
      const key = `${lease.spec.holderIdentity ?? ''}|${lease.spec.renewTime ?? ''}|${lease.metadata.resourceVersion ?? ''}`;
      if (this.observed?.key !== key) this.observed = { key, at: now };
      const holder = lease.spec.holderIdentity ?? '';
      const durationMs = (lease.spec.leaseDurationSeconds ?? 0) * 1000;
      if (holder !== '' && holder !== identity && this.observed.at + durationMs > now) return 'taken';
      const ours = holder === identity;
      const transitions = (lease.spec.leaseTransitions ?? 0) + (ours ? 0 : 1);
      await client.replace(Leases, { ...lease, spec: spec(transitions, ours ? lease.spec.acquireTime : undefined) });
      return 'held';
    } catch (error) {
      // Conflict: another candidate wrote first. Anything else: the API server is unreachable;
      // either way this attempt failed and the next one decides.
      if (!(error instanceof OperatorError && error.code === OperatorErrorCode.Conflict) && !isNotFound(error)) {
        log.warn('lease attempt failed', { lease: name, error: toError(error).message });
      }
      return 'failed';
    }
  }

  private pause(ms: number): Promise<void> {
    return sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function validate(options: LeaderElectorOptions): void {
  const component = 'LeaderElector';
  const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = options;
  for (const [key, value] of Object.entries({ leaseDurationMs, renewDeadlineMs, retryPeriodMs })) {
    checkOption(Number.isFinite(value) && value > 0, component, key, 'must be a positive number of milliseconds', value);
  }
  checkOption(
    leaseDurationMs >= 1000,
    component,
    'leaseDurationMs',
    'must be at least 1000 (a Lease counts whole seconds)',
    leaseDurationMs,
  );
  checkOption(
    renewDeadlineMs < leaseDurationMs,
    component,
    'renewDeadlineMs',
    'must be less than leaseDurationMs, or two replicas could lead at once',
    renewDeadlineMs,
  );
  checkOption(retryPeriodMs < renewDeadlineMs, component, 'retryPeriodMs', 'must be less than renewDeadlineMs', retryPeriodMs);
  for (const key of ['namespace', 'name', 'identity'] as const) checkOption(options[key].length > 0, component, key, 'must not be empty');
}
