/**
 * From a project's public events to the notices its webhooks and email addresses get: phase
 * changes, approvals waiting and the delivery. The Project actor hands each event it publishes
 * to `noticeHook` within its turn, so a notice is queued in the outbox exactly when the event
 * is journaled, and a replayed turn queues it under the same message id, which is dropped.
 */
import type { Event } from '@troupe/proto';
import type { ActorContext, ActorType } from '../../actors/actor.js';
import { LIFECYCLE } from '../project-events.js';
import type { LifecyclePhase, ProjectEvent, ProjectMessage, ProjectState } from '../project.types.js';
import type { Mail, Notice, NoticeData, OutboxMessage, ProjectInfo, WebhookPayload } from './delivery.types.js';

type Body = NonNullable<Event['event']>;

const PHASES = new Map<number, LifecyclePhase>(Object.entries(LIFECYCLE).map(([name, code]) => [code, name as LifecyclePhase]));

function phaseName(code: number): LifecyclePhase {
  const name = PHASES.get(code);
  if (name === undefined) throw new RangeError(`no lifecycle phase has the code ${code}`);
  return name;
}

/** The notice an event makes, if anyone outside hears about that kind of event. */
export function noticeOf(state: Pick<ProjectState, 'namespace' | 'name'>, sequence: number, body: Body, at: number): Notice | undefined {
  const id = `${state.namespace}/${state.name}#${sequence}`;
  const notice = (data: NoticeData): Notice => ({ id, occurredAt: at, data });
  switch (body.$case) {
    case 'projectPhaseChanged':
      return notice({
        type: 'project.phase_changed',
        phase: phaseName(body.value.phase),
        previous: phaseName(body.value.previous),
        workflowPhase: body.value.currentPhase,
        reason: body.value.reason,
        message: body.value.message,
      });
    case 'approvalRequested':
      return notice({ type: 'project.approval_requested', workflowPhase: body.value.phase });
    case 'projectDelivered': {
      const { usd = 0, tokensIn = 0, tokensOut = 0, llmCalls = 0 } = body.value.cost ?? {};
      return notice({
        type: 'project.delivered',
        artifacts: body.value.artifacts.map(({ name, kind, sha256, bytes }) => ({ name, kind, sha256, bytes })),
        cost: { usd, tokensIn, tokensOut, llmCalls },
      });
    }
    default:
      return undefined;
  }
}

/** What the outbox needs of a project, or undefined when its spec asks for no delivery at all. */
export function projectInfo(state: ProjectState): ProjectInfo | undefined {
  const spec = state.spec;
  if (spec === undefined) return undefined;
  const notify = spec.notify ?? { webhooks: [], email: [] };
  const git = spec.delivery?.git;
  if (notify.webhooks.length === 0 && notify.email.length === 0 && git === undefined) return undefined;
  return {
    namespace: state.namespace,
    name: state.name,
    client: spec.client,
    generation: state.generation,
    deliverables: spec.deliverables,
    notify,
    ...(git === undefined ? {} : { git }),
  };
}

/**
 * The Project actor's `onPublished` hook: tells the project's outbox (same key) of every event
 * that makes a notice, when the project asks for delivery.
 */
export function noticeHook(outbox: ActorType<unknown, OutboxMessage, unknown, unknown>) {
  return (ctx: ActorContext<ProjectState, ProjectMessage, ProjectEvent>, state: ProjectState, sequence: number, body: Body): void => {
    const project = projectInfo(state);
    if (project === undefined) return;
    const notice = noticeOf(state, sequence, body, ctx.now);
    if (notice !== undefined) ctx.tell(outbox, `${state.namespace}/${state.name}`, { type: 'notice', project, notice });
  };
}

/** A notice as the JSON body of its webhooks. */
export function webhookPayload(project: ProjectInfo, notice: Notice): WebhookPayload {
  const { type, ...data } = notice.data;
  return {
    id: notice.id,
    type,
    occurredAt: new Date(notice.occurredAt).toISOString(),
    namespace: project.namespace,
    project: project.name,
    client: project.client,
    generation: project.generation,
    data,
  };
}

/** The email of a phase change. */
export function phaseChangeMail(
  project: ProjectInfo,
  notice: Notice & { data: { type: 'project.phase_changed' } },
  from: string,
): Omit<Mail, 'messageId'> {
  const { phase, previous, workflowPhase, reason, message } = notice.data;
  const key = `${project.namespace}/${project.name}`;
  return {
    from,
    to: project.notify.email,
    subject: `[troupe] ${key} is ${phase}${message === '' ? '' : `: ${message}`}`,
    date: notice.occurredAt,
    text: [
      `Project ${key} (client ${project.client}, generation ${project.generation}) is now ${phase}, after ${previous}.`,
      '',
      ...(workflowPhase === '' ? [] : [`Workflow phase: ${workflowPhase}`]),
      `Reason: ${reason}`,
      ...(message === '' ? [] : [`Detail: ${message}`]),
      `At: ${new Date(notice.occurredAt).toISOString()}`,
      `Event: ${notice.id}`,
      '',
    ].join('\n'),
  };
}
