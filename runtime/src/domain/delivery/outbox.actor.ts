/**
 * The delivery outbox: a durable actor per project that turns its notices into jobs — a
 * webhook POST per endpoint, an email per phase change, the git push on delivery followed by
 * the `project.delivered` webhooks — and keeps each job until it is done. Attempts run in the
 * courier, outside the outbox's turns; every attempt arms a durable timer, so a job whose
 * attempt failed is retried after a capped, jittered exponential backoff, and one whose
 * attempt was lost with its node (or a restart) is retried when the timer fires.
 */
import { defineActor, type ActorContext, type ActorType } from '../../actors/actor.js';
import type { ArtifactRef } from '../project.types.js';
import {
  DeliveryError,
  redactUrl,
  type CourierRun,
  type DeliveryJob,
  type Notice,
  type NoticeData,
  type OutboxEvent,
  type OutboxMessage,
  type OutboxState,
  type ProjectInfo,
  type RetryPolicy,
} from './delivery.types.js';
import { phaseChangeMail, webhookPayload } from './notices.js';

export interface OutboxOptions {
  /** The courier actor type, which runs the attempts (a getter: the two refer to each other). */
  courier: () => ActorType<unknown, CourierRun, unknown, unknown>;
  mailFrom: string;
  retry: RetryPolicy;
  random: () => number;
  /** Told of every job given up, with why; never of a secret. */
  onError: (error: Error) => void;
}

type Context = ActorContext<OutboxState, OutboxMessage, OutboxEvent>;
type WebhookJob = Extract<DeliveryJob, { kind: 'webhook' }>;

/** The wait before attempt `attempt + 1`: base × 2^(attempt−1), capped, then jittered down to at least half. */
export function backoffMs(policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, attempt: number, random: number): number {
  const capped = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(capped / 2 + (capped / 2) * random);
}

export function outboxActor(options: OutboxOptions) {
  return defineActor<OutboxState, OutboxMessage, OutboxEvent, void>({
    type: 'delivery-outbox',
    initialState: () => ({ jobs: {} }),
    apply,
    receive(ctx, message) {
      switch (message.type) {
        case 'notice':
          queue(ctx, jobsFor(message.project, message.notice, options), options);
          return;
        case 'retry': {
          const pending = ctx.state.jobs[message.job];
          if (pending !== undefined) dispatch(ctx, pending.job, pending.attempt + 1, options);
          return;
        }
        case 'done': {
          // A late success of an attempt given up for lost still counts: the job was done.
          const pending = ctx.state.jobs[message.job];
          if (pending === undefined) return;
          finish(ctx, pending.job);
          if (pending.job.kind === 'git' && message.pushed !== undefined) {
            queue(ctx, withGit(pending.job.then, { url: redactUrl(pending.job.target.url), ...message.pushed }), options);
          }
          return;
        }
        case 'failed': {
          const pending = ctx.state.jobs[message.job];
          if (pending === undefined || pending.attempt !== message.attempt) return;
          if (message.retriable && message.attempt < options.retry.maxAttempts) {
            ctx.emit({ type: 'attempt-failed', job: pending.job.id, error: message.error });
            const delayMs = backoffMs(options.retry, message.attempt, options.random());
            ctx.schedule(timerOf(pending.job.id), { delayMs }, { type: 'retry', job: pending.job.id });
            return;
          }
          finish(ctx, pending.job);
          const tries = `${message.attempt} attempt${message.attempt === 1 ? '' : 's'}`;
          options.onError(
            new DeliveryError(pending.job.kind, targetOf(pending.job), `gave up after ${tries}: ${message.error}`, { retriable: false }),
          );
          if (pending.job.kind === 'git') {
            const { url, branch } = pending.job.target;
            queue(ctx, withGit(pending.job.then, { url: redactUrl(url), branch, error: message.error }), options);
          }
          return;
        }
      }
    },
  });
}

/** The jobs a notice makes for a project. */
function jobsFor(project: ProjectInfo, notice: Notice, options: Pick<OutboxOptions, 'mailFrom'>): DeliveryJob[] {
  const hooks = webhookJobs(project, notice);
  switch (notice.data.type) {
    case 'project.phase_changed': {
      if (project.notify.email.length === 0) return hooks;
      const mail = phaseChangeMail(project, { ...notice, data: notice.data }, options.mailFrom);
      return [...hooks, { kind: 'email', id: `${notice.id}/email`, ...mail }];
    }
    case 'project.approval_requested':
      return hooks;
    case 'project.delivered': {
      const manifest = project.deliverables.includes('deployment')
        ? notice.data.artifacts.find((artifact) => artifact.kind === 'deployment')?.name
        : undefined;
      const delivered = manifest === undefined ? hooks : hooks.map((job) => ({ ...job, manifest }));
      const git = project.git;
      if (git === undefined) return delivered;
      const artifacts: ArtifactRef[] = notice.data.artifacts.map((artifact) => ({
        ...artifact,
        uri: `troupe://artifacts/${project.namespace}/${project.name}/${artifact.name}`,
      }));
      return [{ kind: 'git', id: `${notice.id}/git`, project, target: git, artifacts, then: delivered }];
    }
  }
}

function webhookJobs(project: ProjectInfo, notice: Notice): WebhookJob[] {
  const payload = webhookPayload(project, notice);
  return project.notify.webhooks.map((hook, i) => ({
    kind: 'webhook',
    id: `${notice.id}/webhook/${i}`,
    namespace: project.namespace,
    url: hook.url,
    ...(hook.secretRef === undefined ? {} : { secretRef: hook.secretRef.name }),
    payload,
  }));
}

/** The delivered webhooks, now that the push is over. */
function withGit(jobs: WebhookJob[], git: NonNullable<Extract<NoticeData, { type: 'project.delivered' }>['git']>): WebhookJob[] {
  return jobs.map((job) => ({ ...job, payload: { ...job.payload, data: { ...job.payload.data, git } } }));
}

function queue(ctx: Context, jobs: DeliveryJob[], options: OutboxOptions): void {
  for (const job of jobs) {
    if (ctx.state.jobs[job.id] !== undefined) continue;
    ctx.emit({ type: 'queued', job });
    dispatch(ctx, job, 1, options);
  }
}

/** Starts an attempt, and arms the timer that tries again if no answer comes in time. */
function dispatch(ctx: Context, job: DeliveryJob, attempt: number, options: OutboxOptions): void {
  ctx.emit({ type: 'dispatched', job: job.id, attempt });
  ctx.tell(options.courier(), job.id, { type: 'run', owner: ctx.self.id, attempt, job });
  ctx.schedule(timerOf(job.id), { delayMs: options.retry.attemptTimeoutMs }, { type: 'retry', job: job.id });
}

function finish(ctx: Context, job: DeliveryJob): void {
  ctx.cancelTimer(timerOf(job.id));
  ctx.emit({ type: 'finished', job: job.id });
}

function timerOf(job: string): string {
  return `job:${job}`;
}

function targetOf(job: DeliveryJob): string {
  switch (job.kind) {
    case 'webhook':
      return redactUrl(job.url);
    case 'email':
      return job.to.join(', ');
    case 'git':
      return `${redactUrl(job.target.url)}#${job.target.branch}`;
  }
}

function apply(state: OutboxState, event: OutboxEvent): OutboxState {
  switch (event.type) {
    case 'queued':
      return { jobs: { ...state.jobs, [event.job.id]: { job: event.job, attempt: 0 } } };
    case 'dispatched': {
      const pending = state.jobs[event.job];
      return pending === undefined ? state : { jobs: { ...state.jobs, [event.job]: { ...pending, attempt: event.attempt } } };
    }
    case 'attempt-failed': {
      const pending = state.jobs[event.job];
      return pending === undefined ? state : { jobs: { ...state.jobs, [event.job]: { ...pending, error: event.error } } };
    }
    case 'finished': {
      const { [event.job]: _done, ...jobs } = state.jobs;
      return { jobs };
    }
  }
}
