/**
 * The faults the chaos suite injects, each bounded in time, and the table of what happened:
 * SIGKILL of a runtime node (restarted at once, as a kubelet restarts a crashed container), a
 * restart of the Kafka broker, Cassandra frozen (SIGSTOP, then SIGCONT), Redis stopped and
 * started again later, and SIGKILL of the operator replica holding the leader Lease. Each fault
 * waits for the cluster to recover before it returns, and records when it struck, how long it
 * lasted, how long recovery took and what was seen meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { SimulatedServer } from '@troupe/runtime';
import { eventually } from '@troupe/runtime/testing';
import { ready, type ClusterServers, type Operators, type RuntimeNode, type RuntimeNodes } from './chaos-cluster.js';

/** What a fault may touch, and what it observes. */
export interface ChaosTarget {
  servers: ClusterServers;
  nodes: RuntimeNodes;
  operators: Operators;
  /** The simulated LLM server, whose counters tell whether work goes on. */
  llm: SimulatedServer;
  /** Projects not delivered yet, and how many of them are at work rather than waiting for approval, as their resources say. */
  inFlight(): Promise<{ undelivered: number; working: number }>;
  /** When the projects were applied (unix ms): the table's times count from here. */
  startedAt: number;
  /** How long any recovery may take before the run fails. */
  recoveryTimeoutMs: number;
}

/** One row of the table. */
export interface FaultRecord {
  fault: string;
  target: string;
  /** ms after the projects were applied. */
  atMs: number;
  /** Projects not delivered yet when it struck, and how many of them were at work (not waiting for approval). */
  undelivered: number;
  working: number;
  /** How long the fault itself lasted, in ms. */
  lastedMs: number;
  /** ms from the end of the fault until the cluster was whole again. */
  recoveredMs: number;
  /**
   * Whether it kills a node that buys LLM calls: the one way the journal admits a call is bought
   * twice (its buyer died after the answer and before journaling it).
   */
  killsBuyer: boolean;
  outcome: string;
  /** What went wrong that the test must fail on; undefined when the fault was ridden out as it should be. */
  problem?: string;
}

export type Fault = (target: ChaosTarget) => Promise<FaultRecord>;

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** ms from now until every node answers /readyz with 200. */
async function untilAllReady(target: ChaosTarget): Promise<number> {
  const from = Date.now();
  await eventually(async () => void (await Promise.all(target.nodes.nodes.map((node) => ready(node)))), target.recoveryTimeoutMs, 250);
  return Date.now() - from;
}

/**
 * ms from now until the LLM server has sold more than `sold` completions: agents are at work
 * again. Undefined when no project has work left before its approval, so none is to be sold.
 */
async function untilCallsFlow(target: ChaosTarget, sold: number): Promise<number | undefined> {
  const from = Date.now();
  let idle = false;
  await eventually(
    async () => {
      if (target.llm.stats().completions > sold) return;
      idle = (await target.inFlight()).working === 0;
      if (!idle) throw new Error(`no LLM call was sold in ${seconds(Date.now() - from)} after the fault ended`);
    },
    target.recoveryTimeoutMs,
    250,
  );
  return idle ? undefined : Date.now() - from;
}

/** How soon calls were sold again, for an outcome. */
const resumed = (flowing: number | undefined) =>
  flowing === undefined ? 'no project had work left to resume' : `calls sold again within ${seconds(flowing)}`;

/** Starts a record: when, and how many projects were in flight. */
async function strike(target: ChaosTarget): Promise<{ atMs: number; undelivered: number; working: number }> {
  return { atMs: Date.now() - target.startedAt, ...(await target.inFlight()) };
}

/** SIGKILL of a runtime node, restarted at once with the same name and ports; recovered once it is ready again. */
export function killNode(node: RuntimeNode): Fault {
  return async (target) => {
    const start = await strike(target);
    const sold = target.llm.stats().completions;
    await target.nodes.kill(node);
    const killed = Date.now();
    await target.nodes.start(node, target.recoveryTimeoutMs);
    const readyAfter = Date.now() - killed;
    const flowing = await untilCallsFlow(target, target.llm.stats().completions);
    return {
      fault: 'kill -9 runtime node',
      target: node.name,
      killsBuyer: true,
      ...start,
      lastedMs: 0,
      recoveredMs: readyAfter,
      outcome: `restarted at once, ready again after ${seconds(readyAfter)}; ${target.llm.stats().completions - sold} LLM calls sold meanwhile; ${resumed(flowing)}`,
    };
  };
}

/** A restart of the Kafka broker (SIGTERM, then started on the same port and data); recovered once every node is ready and calls flow. */
export function restartBroker(): Fault {
  return async (target) => {
    const start = await strike(target);
    const stopping = Date.now();
    await target.servers.kafka.stop();
    const down = Date.now();
    const soldAtDown = target.llm.stats().completions;
    await target.servers.kafka.start();
    const back = Date.now();
    const sold = target.llm.stats().completions;
    const [readyAfter, flowing] = await Promise.all([untilAllReady(target), untilCallsFlow(target, sold)]);
    return {
      fault: 'Kafka broker restart',
      killsBuyer: false,
      target: target.servers.kafka.endpoint.brokers.join(','),
      ...start,
      lastedMs: back - stopping,
      recoveredMs: Math.max(readyAfter, flowing ?? 0),
      outcome:
        `stopped in ${seconds(down - stopping)}, down ${seconds(back - down)} (${sold - soldAtDown} calls finished meanwhile); ` +
        `back, every node ready after ${seconds(readyAfter)}, ${resumed(flowing)}`,
    };
  };
}

/** Cassandra frozen for `ms` (SIGSTOP: connections stay open, nothing answers), then thawed. */
export function pauseCassandra(ms: number): Fault {
  return async (target) => {
    const start = await strike(target);
    const soldBefore = target.llm.stats().completions;
    target.servers.cassandra.pause();
    const frozen = Date.now();
    try {
      await sleep(ms);
    } finally {
      target.servers.cassandra.resume();
    }
    const thawed = Date.now();
    const sold = target.llm.stats().completions;
    const [readyAfter, flowing] = await Promise.all([untilAllReady(target), untilCallsFlow(target, sold)]);
    return {
      fault: 'Cassandra paused (SIGSTOP)',
      killsBuyer: false,
      target: target.servers.cassandra.endpoint.contactPoints.join(','),
      ...start,
      lastedMs: thawed - frozen,
      recoveredMs: Math.max(readyAfter, flowing ?? 0),
      outcome: `${sold - soldBefore} LLM calls sold while frozen; after SIGCONT every node ready in ${seconds(readyAfter)}, ${resumed(flowing)}`,
    };
  };
}

/** The fallback's warning in a node's log (LlmRateLimiter's onDegraded). */
const LOCAL_LIMITS = 'using local limits';

/**
 * Redis stopped for `ms`, then started again (empty: it keeps no data). Meanwhile every node
 * must keep buying LLM calls under its local limits; recovered once every node's readiness,
 * which checks Redis, passes again.
 */
export function loseRedis(ms: number): Fault {
  return async (target) => {
    const start = await strike(target);
    const logged = new Map(target.nodes.nodes.map((node) => [node.name, target.nodes.stderr(node).length]));
    const soldBefore = target.llm.stats().completions;
    await target.servers.redis.stop();
    const lost = Date.now();
    await sleep(ms);
    const soldWhileDown = target.llm.stats().completions - soldBefore;
    const fellBack = target.nodes.nodes.filter((node) => target.nodes.stderr(node).slice(logged.get(node.name)).includes(LOCAL_LIMITS));
    await target.servers.redis.start();
    const back = Date.now();
    const readyAfter = await untilAllReady(target);
    // Projects waiting for approval buy nothing and ask for no limits: only with work to do must both be seen.
    const problems =
      start.working === 0
        ? []
        : [
            ...(fellBack.length === 0 ? ['no node fell back to local rate limits'] : []),
            ...(soldWhileDown === 0 ? ['no LLM call was bought while Redis was gone'] : []),
          ];
    return {
      fault: 'Redis lost, brought back later',
      killsBuyer: false,
      target: target.servers.redis.endpoint.url,
      ...start,
      lastedMs: back - lost,
      recoveredMs: readyAfter,
      outcome:
        `${fellBack.map((node) => node.name).join(', ') || 'no node'} fell back to local limits ("${LOCAL_LIMITS}"); ` +
        `${soldWhileDown} LLM calls bought while it was gone; back empty, every node ready after ${seconds(readyAfter)}`,
      ...(problems.length === 0 ? {} : { problem: problems.join('; ') }),
    };
  };
}

/**
 * SIGKILL of the operator replica that holds the Lease: it releases nothing, so a standby takes
 * over once the Lease runs out. The killed replica then starts again, as a standby.
 */
export function killOperatorLeader(): Fault {
  return async (target) => {
    const start = await strike(target);
    const leader = await target.operators.leader();
    if (leader === undefined) {
      return {
        fault: 'kill -9 operator leader',
        killsBuyer: false,
        target: '-',
        ...start,
        lastedMs: 0,
        recoveredMs: 0,
        outcome: '-',
        problem: 'no replica held the Lease',
      };
    }
    await target.operators.kill(leader);
    const killed = Date.now();
    let successor: string | undefined;
    await eventually(
      async () => {
        successor = await target.operators.leader();
        if (successor === leader || successor === undefined)
          throw new Error(`the Lease is still ${leader}'s ${seconds(Date.now() - killed)} after it was killed`);
      },
      target.recoveryTimeoutMs,
      100,
    );
    const tookOver = Date.now() - killed;
    target.operators.start(leader);
    return {
      fault: 'kill -9 operator leader',
      killsBuyer: false,
      target: leader,
      ...start,
      lastedMs: 0,
      recoveredMs: tookOver,
      outcome: `${successor} took the Lease after ${seconds(tookOver)}; ${leader} started again as a standby`,
    };
  };
}

/**
 * Runs the faults one after the other, handing each record to `onRecord` as it comes; each
 * waits until the LLM server has sold `callsBetween` more calls since the one before recovered
 * (so that the cluster is at work when it strikes), or until no project has work left before
 * its approval.
 */
export async function runFaults(
  target: ChaosTarget,
  faults: readonly Fault[],
  callsBetween: number,
  onRecord: (record: FaultRecord) => void,
): Promise<void> {
  for (const fault of faults) {
    const from = target.llm.stats().completions;
    await eventually(
      async () => {
        const sold = target.llm.stats().completions - from;
        if (sold < callsBetween && (await target.inFlight()).working > 0)
          throw new Error(`only ${sold} of ${callsBetween} LLM calls were sold after the last fault recovered`);
      },
      target.recoveryTimeoutMs,
      1_000,
    );
    onRecord(await fault(target));
  }
}

/** Calls the LLM server sold more than once, by the fault that made each be bought again. */
export interface BoughtAgain {
  /** Per record, in the records' order. */
  perFault: number[];
  /** Repeats no fault explains: bought again with no fault struck since the first sale. */
  unexplained: number;
  /** Repeats the journal promises never to make: after a fault that killed no buyer, or after none. */
  problems: string[];
}

/**
 * How long a killed node's aftermath lasts once it is ready again: its consumer groups take it
 * back and hand partitions over within a session timeout (30 s), and journal records in flight
 * meanwhile may wait out their asks.
 */
const REJOIN_MS = 30_000;

/**
 * Puts each call the server sold more than once down to a fault: a node kill whose aftermath
 * (until REJOIN_MS after the node was ready again) it was first sold in, else the first fault
 * that struck after it was first sold — its buyer died (or lost its lease) after asking and
 * before journaling the answer, and the task's next run bought it again.
 */
export function boughtAgain(records: readonly FaultRecord[], llm: SimulatedServer, startedAt: number): BoughtAgain {
  const perFault = records.map(() => 0);
  let unexplained = 0;
  for (const call of llm.answeredCalls().values()) {
    if (call.answers < 2) continue;
    const aftermath = records.findIndex(
      (record) =>
        record.killsBuyer &&
        startedAt + record.atMs <= call.firstSoldAt &&
        call.firstSoldAt <= startedAt + record.atMs + record.recoveredMs + REJOIN_MS,
    );
    const culprit = aftermath >= 0 ? aftermath : records.findIndex((record) => startedAt + record.atMs >= call.firstSoldAt);
    if (culprit < 0) unexplained += call.answers - 1;
    else perFault[culprit]! += call.answers - 1;
  }
  const problems = [
    ...records.flatMap((record, i) =>
      !record.killsBuyer && perFault[i]! > 0
        ? [`${perFault[i]} calls were bought again after "${record.fault}", which killed no buyer`]
        : [],
    ),
    ...(unexplained > 0 ? [`${unexplained} calls were bought again with no fault struck since they were first sold`] : []),
  ];
  return { perFault, unexplained, problems };
}

/** The faults as a table for the log, one row each, times in seconds since the projects were applied. */
export function faultTable(records: readonly FaultRecord[], again: BoughtAgain): string {
  const header = ['#', 'at', 'fault', 'target', 'in flight', 'lasted', 'recovered after', 'bought again', 'outcome'];
  const rows = records.map((record, i) => [
    String(i + 1),
    seconds(record.atMs),
    record.fault,
    record.target,
    `${record.undelivered} (${record.working} at work)`,
    seconds(record.lastedMs),
    seconds(record.recoveredMs),
    String(again.perFault[i] ?? 0),
    record.problem === undefined ? record.outcome : `${record.outcome} — PROBLEM: ${record.problem}`,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ')} |`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}
