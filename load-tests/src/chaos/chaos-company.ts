/**
 * The company the chaos suite runs: its resources as a platform team would apply them — a
 * simulated ModelProvider, one AgentPool, a Workflow and N Projects with the same brief, each
 * waiting for a human's approval after its review — and the reference delivery: one project of
 * the same spec run to Delivered by the embedded runtime, with no fault anywhere. The simulated
 * provider answers the same prompt the same way, so every chaos project must end with the
 * reference's artefacts (names and sha256) and cost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentPool, ModelProvider, Project, Workflow } from '@troupe/operator';
import { BudgetAction, ProjectPhase, type WorkflowPhase } from '@troupe/proto';
import { createProvider, startEmbeddedRuntime, type PoolResource } from '@troupe/runtime';
import { eventually, SIM_PRICES, submitCommand } from '@troupe/runtime/testing';

/** The ModelProvider's name. */
const PROVIDER = 'simulated';
/** The model every call goes to (a priced one: the ledger's dollars are checked too). */
const MODEL = 'sim-large';
const WORKFLOW = 'one-team-delivery';
const BRIEF =
  'A booking site for a climbing gym: members book slots in the bouldering and lead walls, buy day passes and ' +
  'ten-visit cards by card, and get a reminder the day before; staff see the day’s bookings and close walls for route setting.';
const MAX_COST_USD = 5;

/**
 * The phase after which every project waits for approval: the suite gives it once the last fault
 * has struck, so that however fast the machine, no project is delivered before the faults are over.
 */
export const GATE = 'review';

/**
 * The company's one AgentPool. Every node runs the same pool, so that any node can be killed
 * and any other carries on its work; its role is `architect` because the planner of a fan-out
 * phase always is, and one pool does every phase here.
 */
const POOL = {
  name: 'staff',
  role: 'architect',
  maxOutputTokens: 512,
  systemPrompt: 'You are the one-person team of a small agency: write the requirements, design, code, tests and docs asked for.',
  // Far above what the run asks for: the limits are there to be kept through Redis, and locally while it is gone.
  rateLimit: { requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 },
} as const;

/** software-delivery's phases done by one team: planned, fanned out, reviewed (sent back at most once), documented. */
const PHASES: WorkflowPhase[] = [
  { name: 'requirements', role: POOL.role, needs: [], produces: ['requirements'], fanOut: false, approval: false, loop: undefined },
  {
    name: 'architecture',
    role: POOL.role,
    needs: ['requirements'],
    produces: ['architecture'],
    fanOut: false,
    approval: false,
    loop: undefined,
  },
  { name: 'implementation', role: POOL.role, needs: ['architecture'], produces: ['code'], fanOut: true, approval: false, loop: undefined },
  {
    name: 'review',
    role: POOL.role,
    needs: ['implementation'],
    produces: ['tests'],
    fanOut: false,
    approval: false,
    loop: { backTo: 'implementation', maxIterations: 2 },
  },
  { name: 'docs', role: POOL.role, needs: ['review'], produces: ['docs'], fanOut: false, approval: false, loop: undefined },
];

/** How the company is sized. */
export interface CompanySize {
  /** Projects applied at once. */
  projects: number;
  /** LLM calls in flight per pool replica (AgentPool spec.concurrency). */
  concurrency: number;
}

/** The resources of the company in `namespace`, for the API server. */
export interface CompanyResources {
  provider: ModelProvider;
  pool: AgentPool;
  workflow: Workflow;
  projects: Project[];
}

/** The company's resources, calling the simulated server at `baseURL`. */
export function companyResources(namespace: string, baseURL: string, size: CompanySize): CompanyResources {
  return {
    provider: {
      metadata: { name: PROVIDER, namespace },
      spec: { type: 'simulated', baseURL, pricing: SIM_PRICES },
    },
    pool: {
      metadata: { name: POOL.name, namespace },
      spec: {
        role: POOL.role,
        replicas: 1,
        model: { provider: PROVIDER, name: MODEL, maxOutputTokens: POOL.maxOutputTokens },
        concurrency: size.concurrency,
        rateLimit: { ...POOL.rateLimit },
        systemPrompt: POOL.systemPrompt,
      },
    },
    workflow: {
      metadata: { name: WORKFLOW, namespace },
      spec: { phases: PHASES.map((phase) => ({ ...phase, needs: [...phase.needs], produces: [...phase.produces] })) },
    },
    projects: Array.from({ length: size.projects }, (_, i) => ({
      metadata: { name: `p-${String(i).padStart(3, '0')}`, namespace },
      spec: {
        client: `client-${i % 10}`,
        brief: BRIEF,
        workflow: WORKFLOW,
        deliverables: ['requirements', 'architecture', 'code', 'tests', 'docs'],
        budget: { maxCostUSD: MAX_COST_USD, onExceeded: 'Fail' },
        approvals: [GATE],
        priority: 50,
        suspend: false,
      },
    })),
  };
}

/** An artefact as a Project's status lists it, without its uri (which names the project). */
export interface DeliveredArtifact {
  name: string;
  kind: string;
  sha256: string;
  bytes: number;
}

/** What the reference project delivered and what it spent. */
export interface Reference {
  artifacts: DeliveredArtifact[];
  cost: { usd: number; tokensIn: number; tokensOut: number; llmCalls: number };
  tasks: number;
}

/**
 * Runs one project of the company's spec to Delivered in the embedded runtime, against its own
 * simulated server (at `baseURL`, with the chaos server's seed), and returns what it delivered.
 */
export async function referenceDelivery(baseURL: string, size: CompanySize, timeoutMs: number): Promise<Reference> {
  const dataDir = mkdtempSync(join(tmpdir(), 'troupe-chaos-reference-'));
  const namespace = 'reference';
  const pool: PoolResource = {
    namespace,
    name: POOL.name,
    replicas: 1,
    spec: {
      role: POOL.role,
      model: { provider: PROVIDER, name: MODEL, maxOutputTokens: POOL.maxOutputTokens },
      concurrency: size.concurrency,
      rateLimit: { ...POOL.rateLimit },
      systemPrompt: POOL.systemPrompt,
    },
  };
  const runtime = await startEmbeddedRuntime({
    dataDir,
    providers: [createProvider(PROVIDER, { type: 'simulated', baseURL, pricing: SIM_PRICES })],
    pools: [pool],
  });
  try {
    const command = submitCommand(namespace, 'reference', {
      maxCostUSD: MAX_COST_USD,
      onExceeded: BudgetAction.FAIL,
      workflow: { name: WORKFLOW, phases: PHASES },
    });
    await runtime.company.submitProject('chaos-reference', { ...command, spec: { ...command.spec!, brief: BRIEF } });
    let delivered: Reference | undefined;
    await eventually(
      async () => {
        const status = (await runtime.company.getProject(namespace, 'reference'))?.status;
        if (status?.phase === ProjectPhase.FAILED) throw new Error(`the reference project failed: ${JSON.stringify(status.conditions)}`);
        if (status?.phase !== ProjectPhase.DELIVERED)
          throw new Error(`the reference project is not delivered yet (${status?.currentPhase})`);
        const { usd = 0, tokensIn = 0, tokensOut = 0, llmCalls = 0 } = status.cost ?? {};
        delivered = {
          artifacts: status.artifacts.map(({ name, kind, sha256, bytes }) => ({ name, kind, sha256, bytes })),
          cost: { usd, tokensIn, tokensOut, llmCalls },
          tasks: status.progress?.tasksDone ?? 0,
        };
      },
      timeoutMs,
      200,
    );
    return delivered!;
  } finally {
    await runtime.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
