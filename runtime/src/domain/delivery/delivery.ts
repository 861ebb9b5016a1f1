/**
 * Delivery, assembled: the outbox and courier actor types over the senders the Company is
 * given, and the hook through which the Project actor queues its notices. What a project asks
 * for (spec.notify, spec.delivery.git) and what its endpoints receive is documented in
 * runtime/src/domain/delivery/README.md.
 */
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { ArtifactStore } from '../artifacts.js';
import { courierActor } from './courier.actor.js';
import type { DeliveryOptions } from './delivery.types.js';
import { noticeHook } from './notices.js';
import { outboxActor } from './outbox.actor.js';

/**
 * The actor types of delivery, to register with the ActorSystem, and the Project actor's
 * `onPublished` hook; `outbox` is the type notices are told to.
 *
 * @example
 * const delivery = deliveryActors({ ...DELIVERY_DEFAULTS, webhooks, git, secrets }, artifacts, onError);
 * const project = projectActor({ …, onPublished: delivery.onPublished });
 * await ActorSystem.start({ …, actors: [project, …, ...delivery.actors] });
 */
export function deliveryActors(options: DeliveryOptions, artifacts: ArtifactStore, onError: (error: Error) => void) {
  for (const key of ['baseDelayMs', 'maxDelayMs', 'maxAttempts', 'attemptTimeoutMs'] as const) {
    const value = options.retry[key];
    if (!(Number.isInteger(value) && value > 0)) {
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `delivery option retry.${key} must be a positive integer, got ${value}`);
    }
  }
  let outbox: ReturnType<typeof outboxActor> | undefined;
  const courier = courierActor({
    webhooks: options.webhooks,
    git: options.git,
    ...(options.mailer === undefined ? {} : { mailer: options.mailer }),
    secrets: options.secrets,
    artifacts,
    outbox: () => outbox as NonNullable<typeof outbox>,
    running: new Set(),
    onError,
  });
  outbox = outboxActor({ courier: () => courier, mailFrom: options.mailFrom, retry: options.retry, random: options.random, onError });
  return { outbox, actors: [outbox, courier], onPublished: noticeHook(outbox) };
}
