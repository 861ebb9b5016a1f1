/**
 * A task's run: the message a project publishes on its pool's topic, carrying everything the
 * run needs, and what a pool replica does with it — the role's prompt, LLM calls through the
 * journal, validated structured output, artefacts stored — ending in the outcome it tells the
 * project.
 */
import { Envelope, type TraceContext } from '@troupe/proto';
import { isPassing, RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { AgentPool } from '../llm/agent-pool.js';
import type { OutputSpec, TaskOutput } from '../llm/agent-contract.js';
import type { Budgets } from '../llm/budget.js';
import { BudgetExceededError } from '../llm/errors.js';
import { currentTraceContext } from '../tracing/runtime-tracing.js';
import { redact } from '../security/redact.js';
import type { ArtifactStore } from './artifacts.js';
import type { ArtifactRef, Deliverable, ProjectMessage, ProjectState, TaskRecord } from './project.types.js';

/** Everything a task run needs, carried in its message: the runner reads no project state. */
export interface TaskRun {
  type: 'run';
  namespace: string;
  project: string;
  /** The project's incarnation (see ProjectState); unset for its first. */
  incarnation?: number;
  client: string;
  brief: string;
  task: TaskRecord;
  deliverables: Deliverable[];
  budget: { maxCostUSD: number; maxTokens?: number; onExceeded: 'Pause' | 'Fail' };
  /** The project's priority (0..100) and deadline (unix ms): what a saturated pool runs first. */
  priority: number;
  deadline?: number;
  /** What the project recorded as spent so far. */
  spentUSD: number;
  /** Summaries of earlier work, quoted in the prompt. */
  context: Record<string, string>;
  artifacts: ArtifactRef[];
  /** The trace of the turn that dispatched the task, which the task's span continues. */
  trace?: TraceContext;
}

/** The run message for a task of a project; made in the project's turn, it carries that turn's trace. */
export function taskRun(state: ProjectState, task: TaskRecord): TaskRun {
  const spec = state.spec;
  if (spec === undefined) throw new Error(`project ${state.namespace}/${state.name} has no spec`);
  const done = Object.values(state.tasks).filter((t) => t.state === 'succeeded' && t.summary !== undefined);
  const of = (phase: string) =>
    done
      .filter((t) => t.phase === phase)
      .map((t) => `- ${t.title}: ${t.summary}`)
      .join('\n');
  return {
    type: 'run',
    namespace: state.namespace,
    project: state.name,
    ...(state.incarnation === undefined ? {} : { incarnation: state.incarnation }),
    client: spec.client,
    brief: spec.brief,
    task,
    deliverables: spec.deliverables,
    budget: spec.budget,
    priority: spec.priority,
    ...(spec.deadline === undefined ? {} : { deadline: spec.deadline }),
    spentUSD: state.spend.usd,
    context: {
      requirements: of('requirements'),
      architecture: of('architecture'),
      implementation: of('implementation'),
      review: of('review'),
      parts: done
        .filter((t) => task.needs.includes(t.id))
        .map((t) => `- ${t.title}`)
        .join('\n'),
    },
    artifacts: state.artifacts,
    trace: currentTraceContext(),
  };
}

/**
 * The id of a run's task in its pool, which its LLM calls' journals are named by: a project created
 * again under a deleted one's name (its incarnation) is counted apart from it.
 */
export function poolTaskId(run: Pick<TaskRun, 'namespace' | 'project' | 'incarnation' | 'task'>): string {
  const project = `${run.namespace}/${run.project}`;
  return run.incarnation === undefined ? `${project}/${run.task.id}` : `${project}/~${run.incarnation}/${run.task.id}`;
}

/** The key of one run of a task: a task runs again under a new step after a review loop. */
export function runKey(run: Pick<TaskRun, 'namespace' | 'project' | 'incarnation' | 'task'>): string {
  return `${poolTaskId(run)}@${run.task.step}`;
}

/** The type of a task run's envelope on a pool topic. */
const TASK_RUN = 'troupe.TaskRun';

/**
 * A run as its pool topic carries it: an Envelope addressed to the run, with `id` (made in the
 * dispatching turn, so the same on a replay of that turn) naming this dispatch of it.
 */
export function encodeTaskRun(id: string, run: TaskRun, now: number): Uint8Array {
  return Envelope.encode({
    id,
    target: { type: 'task', id: runKey(run) },
    type: TASK_RUN,
    payload: Buffer.from(JSON.stringify(run)),
    trace: run.trace,
    attempt: 1,
    causationId: '',
    correlationId: id,
    createdAt: now,
  }).finish();
}

/** The dispatch id and run of a pool topic record; throws when the record is not a task run. */
export function decodeTaskRun(value: Uint8Array): { id: string; run: TaskRun } {
  const envelope = Envelope.decode(value);
  if (envelope.type !== TASK_RUN) {
    throw new RuntimeError(RuntimeErrorCode.InvalidTask, `a pool topic record holds ${JSON.stringify(envelope.type)}, not a task run`);
  }
  return { id: envelope.id, run: JSON.parse(Buffer.from(envelope.payload).toString('utf8')) as TaskRun };
}

/** What a role is asked, and the shape of its answer. */
interface Assignment {
  prompt: string;
  output: OutputSpec;
  /** Turns the answer into artefacts, planner items and a verdict. */
  deliver(output: Record<string, unknown>, run: TaskRun): { summary: string; items?: string[]; files: File[]; verdict?: boolean };
}

interface File {
  name: string;
  kind: Deliverable;
  content: string;
}

const BRIEF = 'Client brief:\n{{brief}}\n\n';

function text(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value ?? '');
}

function list(value: unknown): string[] {
  return Array.isArray(value) ? value.map(text) : [text(value)];
}

function slug(title: string): string {
  return (
    title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '')
      .slice(0, 40) || 'part'
  );
}

const ASSIGNMENTS: Readonly<Record<string, Assignment>> = {
  requirements: {
    prompt: `${BRIEF}As the project manager, write the requirements: a title, the requirements, and acceptance criteria.`,
    output: { kind: 'json', fields: { title: 'string', requirements: 'string[]', acceptance: 'string[]' } },
    deliver: (o) => ({
      summary: text(o.title),
      files: [
        {
          name: 'requirements.md',
          kind: 'requirements',
          content: `# ${text(o.title)}\n\n## Requirements\n\n${list(o.requirements)
            .map((r) => `- ${r}`)
            .join('\n')}\n\n## Acceptance criteria\n\n${list(o.acceptance)
            .map((a) => `- ${a}`)
            .join('\n')}\n`,
        },
      ],
    }),
  },
  architecture: {
    prompt: `${BRIEF}Requirements:\n{{requirements}}\n\nAs the architect, describe the architecture: an overview, its components and the key decisions.`,
    output: { kind: 'json', fields: { overview: 'string', components: 'string[]', decisions: 'string[]' } },
    deliver: (o) => ({
      summary: text(o.overview),
      files: [
        {
          name: 'architecture.md',
          kind: 'architecture',
          content: `# Architecture\n\n${text(o.overview)}\n\n## Components\n\n${list(o.components)
            .map((c) => `- ${c}`)
            .join('\n')}\n\n## Decisions\n\n${list(o.decisions)
            .map((d) => `- ${d}`)
            .join('\n')}\n`,
        },
      ],
    }),
  },
  plan: {
    prompt: `${BRIEF}Architecture:\n{{architecture}}\n\nReview findings to address:\n{{review}}\n\nSplit the implementation into independent tasks a developer can each finish alone.`,
    output: { kind: 'json', fields: { tasks: 'string[]' } },
    deliver: (o) => ({ summary: `${list(o.tasks).length} tasks planned`, items: list(o.tasks), files: [] }),
  },
  implementation: {
    prompt: `${BRIEF}Architecture:\n{{architecture}}\n\nYour task: {{task}}\nParts already built:\n{{parts}}\n\nAs a developer, write the code for your task, and say what it does.`,
    output: { kind: 'json', fields: { summary: 'string', code: 'string' } },
    deliver: (o, run) => ({
      summary: text(o.summary),
      files: [
        {
          name: run.task.id.endsWith('-integrate') ? 'src/index.ts' : `src/${slug(run.task.title)}.ts`,
          kind: 'code',
          content: `// ${run.task.title}\n// ${text(o.summary)}\n\n${text(o.code)}\n`,
        },
      ],
    }),
  },
  review: {
    prompt: `${BRIEF}Requirements:\n{{requirements}}\n\nImplementation:\n{{implementation}}\n\nAs QA, review the implementation against the requirements: is it acceptable, what did you find, and the acceptance tests you wrote.`,
    output: { kind: 'json', fields: { approved: 'boolean', findings: 'string[]', tests: 'string' } },
    deliver: (o, run) => ({
      summary: `${o.approved === true ? 'approved' : 'changes requested'}: ${list(o.findings).join('; ')}`,
      verdict: o.approved === true,
      files: [
        { name: `tests/acceptance-${run.task.step + 1}.test.ts`, kind: 'tests', content: `// ${run.task.title}\n\n${text(o.tests)}\n` },
      ],
    }),
  },
  docs: {
    prompt: `${BRIEF}Architecture:\n{{architecture}}\n\nImplementation:\n{{implementation}}\n\nAs the technical writer, write the README: an introduction, how to install and how to use it.`,
    output: { kind: 'json', fields: { introduction: 'string', install: 'string', usage: 'string' } },
    deliver: (o) => ({
      summary: text(o.introduction),
      files: [
        {
          name: 'README.md',
          kind: 'docs',
          content: `# README\n\n${text(o.introduction)}\n\n## Install\n\n${text(o.install)}\n\n## Usage\n\n${text(o.usage)}\n`,
        },
      ],
    }),
  },
  delivery: {
    prompt: `${BRIEF}Implementation:\n{{implementation}}\n\nAs devops, write the release notes and the deployment steps.`,
    output: { kind: 'json', fields: { notes: 'string', steps: 'string[]' } },
    deliver: (o, run) => ({
      summary: text(o.notes),
      files: [
        {
          name: 'delivery.json',
          kind: 'deployment',
          content: `${JSON.stringify(
            {
              project: `${run.namespace}/${run.project}`,
              client: run.client,
              notes: text(o.notes),
              steps: list(o.steps),
              artifacts: run.artifacts.map(({ name, kind, sha256, bytes }) => ({ name, kind, sha256, bytes })),
            },
            null,
            2,
          )}\n`,
        },
      ],
    }),
  },
};

/** What running a task takes: the pool that runs it, where its artefacts go, and this process's budgets. */
export interface TaskDeps {
  pool: AgentPool;
  artifacts: ArtifactStore;
  budgets: Budgets;
}

/** Runs a task in its pool; never throws: a failure is the outcome `task-failed`. */
export async function runTask(run: TaskRun, options: TaskDeps): Promise<ProjectMessage> {
  const { task } = run;
  const key = `${run.namespace}/${run.project}`;
  // Which run of which task the outcome answers.
  const of = { taskId: task.id, step: task.step, ...(run.incarnation === undefined ? {} : { incarnation: run.incarnation }) };
  const assignment = ASSIGNMENTS[task.kind === 'planner' ? 'plan' : task.phase];
  try {
    if (assignment === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidTask, `no assignment for phase ${task.phase}`);
    // Budgets here count what this process spent; the project's record counts every node's.
    const here = options.budgets.usage('project', key).spentUSD;
    options.budgets.setLimit('project', key, {
      maxCostUSD: Math.max(0, here + run.budget.maxCostUSD - run.spentUSD),
      ...(run.budget.maxTokens === undefined ? {} : { maxTokens: run.budget.maxTokens }),
      onExceeded: run.budget.onExceeded,
    });
    options.budgets.resume(key);
    const outcome = await options.pool.run({
      taskId: poolTaskId(run),
      step: task.step,
      account: { client: run.client, project: key, phase: task.phase },
      priority: run.priority,
      ...(run.deadline === undefined ? {} : { deadline: run.deadline }),
      prompt: assignment.prompt,
      vars: { brief: run.brief, task: task.title, ...run.context },
      output: assignment.output,
    });
    const result = assignment.deliver(fields(outcome.output), run);
    const artifacts: ArtifactRef[] = [];
    for (const file of result.files) {
      if (!run.deliverables.includes(file.kind)) continue;
      artifacts.push(await options.artifacts.put(run.namespace, run.project, file.name, file.kind, Buffer.from(file.content)));
    }
    return {
      type: 'task-done',
      ...of,
      summary: result.summary.slice(0, 500),
      items: result.items ?? [],
      artifacts,
      verdict: result.verdict,
      spend: {
        usd: outcome.costUSD,
        tokensIn: outcome.usage.inputTokens,
        tokensOut: outcome.usage.outputTokens,
        // A call journaled by an earlier run of the task was bought all the same, and counts here:
        // that run never told the project.
        llmCalls: outcome.calls.filter((call) => call.source !== 'cache').length,
      },
    };
  } catch (thrown) {
    const error = toError(thrown);
    if (error instanceof BudgetExceededError) {
      return {
        type: 'task-failed',
        ...of,
        code: 'BUDGET_EXCEEDED',
        message: error.message,
        onExceeded: error.onExceeded,
      };
    }
    const code = error instanceof RuntimeError ? error.code : 'TASK_FAILED';
    // Journaled, the message reaches the project's status, the dashboard and the Project resource.
    return { type: 'task-failed', ...of, code, message: redact(error.message), retriable: isPassing(error) };
  }
}

function fields(output: TaskOutput): Record<string, unknown> {
  return output.kind === 'json' ? output.value : { summary: output.text, code: output.text };
}
