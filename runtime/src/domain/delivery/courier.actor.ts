/**
 * The courier: a non-durable actor on the node of the outbox that ordered it. It makes one
 * attempt of one job — signs and POSTs a webhook, mails a notice, commits and pushes the
 * deliverables — and tells the outbox how it went. Its turn returns at once, so attempts run
 * in parallel; an attempt lost with its node is ordered again by the outbox's timer.
 */
import { createHash } from 'node:crypto';
import { defineActor, type ActorType } from '../../actors/actor.js';
import { toError } from '../../errors.js';
import type { ArtifactStore } from '../artifacts.js';
import {
  DeliveryError,
  redactUrl,
  type CourierRun,
  type DeliveryJob,
  type DeliveryOptions,
  type OutboxMessage,
  type SecretSource,
} from './delivery.types.js';

export interface CourierOptions extends Pick<DeliveryOptions, 'webhooks' | 'git' | 'mailer' | 'secrets'> {
  artifacts: ArtifactStore;
  /** The outbox actor type, to report back to (a getter: the two refer to each other). */
  outbox: () => ActorType<unknown, OutboxMessage, unknown, unknown>;
  /** Attempts in progress on this node, by job id. */
  running: Set<string>;
  onError: (error: Error) => void;
}

export function courierActor(options: CourierOptions) {
  return defineActor<null, CourierRun, never, void>({
    type: 'delivery-courier',
    durable: false,
    initialState: () => null,
    apply: (state) => state,
    receive(ctx, run) {
      const key = ctx.self.id;
      if (options.running.has(key)) return;
      options.running.add(key);
      const { job, attempt } = run;
      void attemptJob(job, options)
        .then(
          (pushed): OutboxMessage => ({ type: 'done', job: job.id, attempt, ...(pushed === undefined ? {} : { pushed }) }),
          (thrown: unknown): OutboxMessage => {
            const error = toError(thrown);
            if (error instanceof DeliveryError)
              return { type: 'failed', job: job.id, attempt, error: error.detail, retriable: error.retriable };
            return { type: 'failed', job: job.id, attempt, error: error.message, retriable: true };
          },
        )
        .then((message) => ctx.tell(options.outbox(), run.owner, message))
        .catch((error: unknown) => options.onError(toError(error)))
        .finally(() => options.running.delete(key));
    },
  });
}

/** Makes one attempt; resolves with where the commit went for a git job. */
async function attemptJob(job: DeliveryJob, options: CourierOptions): Promise<{ branch: string; commit: string } | undefined> {
  switch (job.kind) {
    case 'webhook': {
      const failure = (message: string, retriable: boolean) => new DeliveryError('webhook', redactUrl(job.url), message, { retriable });
      const secret =
        job.secretRef === undefined
          ? undefined
          : (await readSecret(options.secrets, job.namespace, job.secretRef, 'secret', failure)).secret;
      let payload = job.payload;
      if (job.manifest !== undefined) {
        const bytes = await options.artifacts.get(job.namespace, job.payload.project, job.manifest);
        if (bytes === undefined) throw failure(`the manifest ${job.manifest} is gone`, false);
        let manifest: unknown;
        try {
          manifest = JSON.parse(Buffer.from(bytes).toString('utf8'));
        } catch (error) {
          throw failure(`the manifest ${job.manifest} is not JSON: ${(error as Error).message}`, false);
        }
        payload = { ...payload, data: { ...payload.data, manifest } };
      }
      await options.webhooks.post({
        url: job.url,
        eventId: job.payload.id,
        eventType: job.payload.type,
        body: JSON.stringify(payload),
        ...(secret === undefined ? {} : { secret }),
      });
      return undefined;
    }
    case 'email': {
      if (options.mailer === undefined) {
        throw new DeliveryError('email', job.to.join(', '), 'no SMTP server is configured (TROUPE_SMTP_URL)', { retriable: false });
      }
      // The same notice keeps the same Message-ID across attempts.
      const messageId = `${createHash('sha256').update(job.id).digest('hex').slice(0, 32)}@troupe`;
      await options.mailer.send({ from: job.from, to: job.to, subject: job.subject, text: job.text, date: job.date, messageId });
      return undefined;
    }
    case 'git': {
      const { project, target } = job;
      const failure = (message: string, retriable: boolean) =>
        new DeliveryError('git', `${redactUrl(target.url)}#${target.branch}`, message, { retriable });
      let credentials: { username: string; password: string } | undefined;
      if (target.secretRef !== undefined) {
        const data = await readSecret(options.secrets, project.namespace, target.secretRef.name, 'password', failure);
        credentials = { username: data.username ?? 'git', password: data.password ?? '' };
      }
      const files: { path: string; content: Uint8Array }[] = [];
      for (const artifact of job.artifacts) {
        const content = await options.artifacts.get(project.namespace, project.name, artifact.name);
        const sha256 = content === undefined ? undefined : createHash('sha256').update(content).digest('hex');
        if (content === undefined || sha256 !== artifact.sha256) {
          throw failure(`artefact ${artifact.name} is not the one delivered (sha256 ${artifact.sha256})`, false);
        }
        files.push({ path: artifact.name, content });
      }
      return options.git.push({
        url: target.url,
        branch: target.branch,
        ...(credentials === undefined ? {} : { credentials }),
        files,
        message: `Deliver ${project.namespace}/${project.name}, generation ${project.generation}\n\n${files.length} artefacts for client ${project.client}, by Troupe.\n`,
      });
    }
  }
}

/** A Secret's data, which must hold `required`; a missing Secret or key may yet be created, so trying again may help. */
async function readSecret(
  secrets: SecretSource,
  namespace: string,
  name: string,
  required: string,
  failure: (message: string, retriable: boolean) => DeliveryError,
): Promise<Record<string, string>> {
  const data = await secrets.get(namespace, name);
  if (data === undefined) throw failure(`Secret ${namespace}/${name} is not found`, true);
  if ((data[required] ?? '') === '') throw failure(`Secret ${namespace}/${name} has no key ${required}`, true);
  return data;
}
