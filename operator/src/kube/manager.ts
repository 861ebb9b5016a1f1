/**
 * The manager, as in controller-runtime: it owns the client, the shared informers, the Event
 * recorder and the controllers, and runs them only while this replica holds the leader Lease,
 * so that two replicas never both act. Leadership lost means stop acting at once; a requested
 * stop drains the reconciles in flight and then releases the Lease for a quick failover.
 */
import { checkOption, toError } from '../errors.js';
import type { KubeClient, ResourceType } from './client.js';
import { systemClock, type Clock } from './clock.js';
import { Controller, type ControllerOptions, type ReconcileOutcome } from './controller.js';
import { EventRecorder, type KindRecorder } from './events.js';
import { Informer } from './informer.js';
import { LeaderElector, type LeaderElectorOptions, type LeadershipEnd } from './leader-election.js';
import { silentLogger, type Logger } from './log.js';
import type { KubeObject } from './types.js';

/** Something else the leader runs beside the controllers, e.g. a poller feeding a controller. */
export interface Runnable {
  start(): void;
  stop(): Promise<void>;
}

export type LeaderElectionSettings = Pick<LeaderElectorOptions, 'namespace' | 'name'> &
  Partial<Pick<LeaderElectorOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>>;

export interface ManagerOptions {
  client: KubeClient;
  /** This replica's name: the Lease holder identity and the Events' reportingInstance. */
  identity: string;
  /** Namespaces to watch; all when empty (default). */
  namespaces: readonly string[];
  /** Where the leader Lease lives; `false` runs without election (a single replica, tests). */
  leaderElection: LeaderElectionSettings | false;
  /** Informer resync period (default 10 min). */
  resyncMs: number;
  /** Keys each controller reconciles at once (default 4). */
  concurrency: number;
  clock: Clock;
  log: Logger;
  onReconciled?: (outcome: ReconcileOutcome) => void;
}

export const MANAGER_DEFAULTS = {
  namespaces: [],
  resyncMs: 10 * 60_000,
  concurrency: 4,
  clock: systemClock,
  log: silentLogger,
} as const satisfies Partial<ManagerOptions>;

/**
 * @example
 * const manager = new Manager({ client, identity: 'operator-0', leaderElection: { namespace: 'troupe-system', name: 'troupe-operator' } });
 * new WorkflowReconciler(manager).setupWithManager(manager);
 * const end = await manager.run();   // 'stopped' after manager.stop(), 'lost' if the Lease was lost
 */
export class Manager {
  readonly options: ManagerOptions;
  readonly client: KubeClient;
  readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private readonly controllers: Controller<KubeObject>[] = [];
  private readonly runnables: Runnable[] = [];
  private readonly elector: LeaderElector | undefined;
  private readonly stopRequested: Promise<void>;
  private requestStop!: () => void;
  private running: Promise<LeadershipEnd> | undefined;
  private leading = false;

  constructor(options: Pick<ManagerOptions, 'client' | 'identity' | 'leaderElection'> & Partial<ManagerOptions>) {
    this.options = { ...MANAGER_DEFAULTS, ...options };
    checkOption(this.options.identity.length > 0, 'Manager', 'identity', 'must not be empty');
    this.client = this.options.client;
    this.log = this.options.log;
    this.recorder = new EventRecorder({ client: this.client, instance: this.options.identity, clock: this.options.clock, log: this.log });
    const election = this.options.leaderElection;
    this.elector =
      election === false
        ? undefined
        : new LeaderElector({
            ...election,
            client: this.client,
            identity: this.options.identity,
            clock: this.options.clock,
            log: this.log,
          });
    this.stopRequested = new Promise((resolve) => (this.requestStop = resolve));
  }

  /** True while this replica runs the controllers. */
  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * The shared informer of `type`: every controller that reads the kind reads one cache. The
   * first caller's `labelSelector` and `transform` apply to all.
   */
  informer<T extends KubeObject>(
    type: ResourceType<T>,
    options: { labelSelector?: string; transform?: (object: T) => T } = {},
  ): Informer<T> {
    const id = `${type.group}/${type.plural}`;
    let informer = this.informers.get(id) as Informer<T> | undefined;
    if (informer === undefined) {
      informer = new Informer<T>({
        client: this.client,
        type,
        namespaces: this.options.namespaces,
        resyncMs: this.options.resyncMs,
        log: this.log.with({ informer: type.plural }),
        ...options,
      });
      this.informers.set(id, informer as unknown as Informer<KubeObject>);
    }
    return informer;
  }

  /** Records Events about objects of `type`, as this replica. */
  eventsFor(type: ResourceType<KubeObject>): KindRecorder {
    return this.recorder.for(type);
  }

  /** Creates a controller that runs while this replica leads. */
  controller<T extends KubeObject>(
    options: Pick<ControllerOptions<T>, 'name' | 'primary' | 'reconciler' | 'recorder'> & Partial<ControllerOptions<T>>,
  ): Controller<T> {
    const controller = new Controller<T>({
      concurrency: this.options.concurrency,
      log: this.log.with({ controller: options.name }),
      onReconciled: this.options.onReconciled,
      ...options,
    });
    this.controllers.push(controller as unknown as Controller<KubeObject>);
    return controller;
  }

  /** Each controller's name and how many keys wait in its work queue. */
  queueDepths(): { controller: string; depth: number }[] {
    return this.controllers.map((controller) => ({ controller: controller.options.name, depth: controller.queue.length }));
  }

  /** Runs `runnable` while this replica leads, after the caches have synced. */
  add(runnable: Runnable): void {
    this.runnables.push(runnable);
  }

  /**
   * Campaigns for leadership, then runs informers, controllers and runnables until `stop`
   * ('stopped') or until the Lease is lost ('lost'); resolves after everything has stopped.
   */
  run(): Promise<LeadershipEnd> {
    this.running ??= this.lead();
    return this.running;
  }

  /** Stops acting, drains the reconciles in flight, releases the Lease; resolves when `run` has. */
  async stop(): Promise<LeadershipEnd> {
    this.requestStop();
    this.elector?.stop();
    return this.run();
  }

  private async lead(): Promise<LeadershipEnd> {
    if (this.elector !== undefined && !(await this.elector.acquire())) return 'stopped';
    this.leading = true;
    const informers = [...this.informers.values()];
    for (const informer of informers) informer.start();
    const synced = await Promise.race([
      Promise.all(informers.map((informer) => informer.synced())).then(() => true),
      this.stopRequested.then(() => false),
    ]);
    if (synced) {
      this.log.info('caches synced, starting controllers', {
        controllers: this.controllers.map((controller) => controller.options.name).join(','),
      });
      for (const controller of this.controllers) controller.start();
      for (const runnable of this.runnables) runnable.start();
    }
    const end: LeadershipEnd =
      this.elector === undefined ? await this.stopRequested.then(() => 'stopped' as const) : await this.elector.hold();
    this.leading = false;
    await this.shutDown();
    if (end === 'stopped') await this.elector?.release();
    return end;
  }

  private async shutDown(): Promise<void> {
    const settle = (label: string, stopping: Promise<unknown>[]) =>
      Promise.allSettled(stopping).then((results) => {
        for (const result of results)
          if (result.status === 'rejected') this.log.error(`stopping ${label} failed`, { error: toError(result.reason).message });
      });
    await settle('controllers', [
      ...this.controllers.map((controller) => controller.stop()),
      ...this.runnables.map((runnable) => runnable.stop()),
    ]);
    await settle(
      'informers',
      [...this.informers.values()].map((informer) => informer.stop()),
    );
    await this.recorder.flush();
  }
}
