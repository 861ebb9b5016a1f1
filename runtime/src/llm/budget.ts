/**
 * Budgets that nest org → client → project. A call reserves its worst case before it is made
 * (estimated prompt tokens plus maxOutputTokens, priced) in every scope of its chain, and
 * settles to what the provider reported after. A reservation is granted only if spent +
 * reserved + the new reservation fits every limit, checked and taken in one synchronous step,
 * so however many calls run in parallel, what is spent plus what is in flight never passes a
 * limit. Spending can pass it only by what the provider charges above a reservation (a prompt
 * it counted above our estimate and its margin). A refused reservation puts the project in the
 * state its spec asks for (Paused or Failed), and every later call of it is refused until
 * `resume`.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { BudgetExceededError, type BudgetLevel, type OnExceeded } from './errors.js';
import type { CallAccount } from './ledger.js';
import { formatUSD, toNanoUSD, toUSD } from './pricing.js';

/** A scope's limits (Project.spec.budget, or a client's or org's). Unset limits do not bind. */
export interface BudgetLimit {
  maxCostUSD?: number;
  maxTokens?: number;
  /** Only read on a project: what it does at any limit of its chain (default Pause). */
  onExceeded?: OnExceeded;
}

/** The worst case a call may spend, or what it did spend. */
export interface BudgetAmount {
  nanoUSD: number;
  tokens: number;
}

/** Where a scope stands. */
export interface BudgetUsage {
  spentUSD: number;
  spentTokens: number;
  reservedUSD: number;
  reservedTokens: number;
  /** Reservations not yet settled. */
  inFlight: number;
}

/** A project's standing with its budgets. */
export type ProjectBudgetState = 'Active' | 'Paused' | 'Failed';

/** Told once when a project pauses or fails at a limit, so its status can say so. */
export interface BudgetExceededEvent {
  project: string;
  state: 'Paused' | 'Failed';
  error: BudgetExceededError;
}

/** What a granted reservation holds. The first settle or release closes it; later ones do nothing. */
export interface Reservation {
  readonly amount: BudgetAmount;
  /** Charges what the call really spent, in place of the reservation. */
  settle(actual: BudgetAmount): void;
  /** Gives the reservation back: the call spent nothing. */
  release(): void;
}

interface Scope {
  level: BudgetLevel;
  id: string;
  limit: BudgetLimit;
  spent: BudgetAmount;
  reserved: BudgetAmount;
  inFlight: number;
}

const DEFAULT_ORG = 'default';

/**
 * @example
 * const budgets = new Budgets({ onExceeded: ({ project, state }) => statusOf(project).set(state) });
 * budgets.setLimit('client', 'acme', { maxCostUSD: 100 });
 * budgets.setLimit('project', 'acme/shop', { maxCostUSD: 5, onExceeded: 'Pause' });
 * const reservation = budgets.reserve(account, { nanoUSD: 60_000, tokens: 1_200 });
 * try {
 *   const completion = await provider.complete(request);
 *   reservation.settle({ nanoUSD: cost.nanoUSD, tokens: completion.usage.inputTokens + completion.usage.outputTokens });
 * } catch (error) {
 *   reservation.release();
 *   throw error;
 * }
 */
export class Budgets {
  private readonly scopes = new Map<string, Scope>();
  private readonly projects = new Map<string, { state: 'Paused' | 'Failed'; error: BudgetExceededError }>();

  constructor(private readonly options: { onExceeded?: (event: BudgetExceededEvent) => void } = {}) {}

  /** Sets or replaces a scope's limits; spending so far is kept. */
  setLimit(level: BudgetLevel, id: string, limit: BudgetLimit): void {
    const refuse = (key: string, rule: string, value: unknown) =>
      new RuntimeError(RuntimeErrorCode.InvalidOptions, `budget ${level} ${id}: ${key} ${rule}, got ${String(value)}`);
    if (limit.maxCostUSD !== undefined && !(Number.isFinite(limit.maxCostUSD) && limit.maxCostUSD > 0))
      throw refuse('maxCostUSD', 'must be a number > 0', limit.maxCostUSD);
    if (limit.maxTokens !== undefined && !(Number.isInteger(limit.maxTokens) && limit.maxTokens > 0))
      throw refuse('maxTokens', 'must be an integer > 0', limit.maxTokens);
    if (limit.onExceeded !== undefined && limit.onExceeded !== 'Pause' && limit.onExceeded !== 'Fail')
      throw refuse('onExceeded', 'must be Pause or Fail', limit.onExceeded);
    this.scope(level, id).limit = { ...limit };
  }

  /**
   * Reserves `amount` in the account's org, client and project, or throws BudgetExceededError
   * when any of them has no room (or the project is already paused or failed).
   */
  reserve(account: CallAccount, amount: BudgetAmount): Reservation {
    const stopped = this.projects.get(account.project);
    if (stopped !== undefined) throw stopped.error;
    const chain = [
      this.scope('org', account.org ?? DEFAULT_ORG),
      this.scope('client', account.client),
      this.scope('project', account.project),
    ];
    for (const scope of chain) {
      const detail = shortfall(scope, amount);
      if (detail !== undefined) throw this.stop(account.project, chain[2]?.limit.onExceeded ?? 'Pause', scope, detail);
    }
    for (const scope of chain) {
      add(scope.reserved, amount, 1);
      scope.inFlight += 1;
    }
    let open = true;
    const close = (actual: BudgetAmount | undefined) => {
      if (!open) return;
      open = false;
      for (const scope of chain) {
        add(scope.reserved, amount, -1);
        scope.inFlight -= 1;
        if (actual !== undefined) add(scope.spent, actual, 1);
      }
    };
    return { amount, settle: (actual) => close(actual), release: () => close(undefined) };
  }

  /** Where a scope stands. */
  usage(level: BudgetLevel, id: string): BudgetUsage {
    const scope = this.scope(level, id);
    return {
      spentUSD: toUSD(scope.spent.nanoUSD),
      spentTokens: scope.spent.tokens,
      reservedUSD: toUSD(scope.reserved.nanoUSD),
      reservedTokens: scope.reserved.tokens,
      inFlight: scope.inFlight,
    };
  }

  /**
   * What each project with a cost limit has left here: its limit less what was spent, reservations
   * in flight not counted; negative when a provider charged above a reservation.
   */
  remainingByProject(): { project: string; remainingUSD: number }[] {
    return [...this.scopes.values()]
      .filter((scope) => scope.level === 'project' && scope.limit.maxCostUSD !== undefined)
      .map((scope) => ({ project: scope.id, remainingUSD: toUSD(toNanoUSD(scope.limit.maxCostUSD!) - scope.spent.nanoUSD) }));
  }

  state(project: string): ProjectBudgetState {
    return this.projects.get(project)?.state ?? 'Active';
  }

  /**
   * Lets a paused project spend again, e.g. after its limit was raised or a human approved.
   * A failed project stays failed.
   */
  resume(project: string): void {
    if (this.projects.get(project)?.state === 'Paused') this.projects.delete(project);
  }

  private stop(project: string, onExceeded: OnExceeded, scope: Scope, detail: string): BudgetExceededError {
    const error = new BudgetExceededError({ level: scope.level, id: scope.id }, project, onExceeded, detail);
    const state = onExceeded === 'Pause' ? 'Paused' : 'Failed';
    this.projects.set(project, { state, error });
    this.options.onExceeded?.({ project, state, error });
    return error;
  }

  private scope(level: BudgetLevel, id: string): Scope {
    const key = `${level}\u0000${id}`;
    let scope = this.scopes.get(key);
    if (scope === undefined) {
      scope = { level, id, limit: {}, spent: { nanoUSD: 0, tokens: 0 }, reserved: { nanoUSD: 0, tokens: 0 }, inFlight: 0 };
      this.scopes.set(key, scope);
    }
    return scope;
  }
}

/** Why `amount` does not fit the scope, or undefined when it does. */
function shortfall(scope: Scope, amount: BudgetAmount): string | undefined {
  const { maxCostUSD, maxTokens } = scope.limit;
  if (maxCostUSD !== undefined) {
    const limit = toNanoUSD(maxCostUSD);
    const committed = scope.spent.nanoUSD + scope.reserved.nanoUSD;
    if (committed + amount.nanoUSD > limit) {
      return `has ${formatUSD(Math.max(0, limit - committed))} left of ${formatUSD(limit)} (${formatUSD(scope.reserved.nanoUSD)} reserved in flight); the call may cost ${formatUSD(amount.nanoUSD)}`;
    }
  }
  if (maxTokens !== undefined) {
    const committed = scope.spent.tokens + scope.reserved.tokens;
    if (committed + amount.tokens > maxTokens) {
      return `has ${Math.max(0, maxTokens - committed)} tokens left of ${maxTokens} (${scope.reserved.tokens} reserved in flight); the call may use ${amount.tokens}`;
    }
  }
  return undefined;
}

function add(into: BudgetAmount, amount: BudgetAmount, sign: 1 | -1): void {
  into.nanoUSD += sign * amount.nanoUSD;
  into.tokens += sign * amount.tokens;
}
