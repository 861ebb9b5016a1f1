/**
 * The delivery of a project's news and work to the outside world: the notices a project's
 * events make, the jobs the outbox keeps until they are done (webhooks, emails, the git push),
 * the small interfaces that do the sending, and the error they fail with.
 */
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { ArtifactRef, Deliverable, GitTarget, LifecyclePhase, NotifyTargets, Spend } from '../project.types.js';

/** The kinds of notice webhooks receive, as the payload's `type` and the `X-Troupe-Event` header. */
export type NoticeType = 'project.phase_changed' | 'project.approval_requested' | 'project.delivered';

/** What a notice says, by type. */
export type NoticeData =
  | {
      type: 'project.phase_changed';
      phase: LifecyclePhase;
      previous: LifecyclePhase;
      /** The workflow phase under way, e.g. `architecture`. */
      workflowPhase: string;
      reason: string;
      message: string;
    }
  | { type: 'project.approval_requested'; workflowPhase: string }
  | {
      type: 'project.delivered';
      artifacts: Omit<ArtifactRef, 'uri'>[];
      cost: Spend;
      /** Where the deliverables were pushed, once the push is over. */
      git?: { url: string; branch: string; commit: string } | { url: string; branch: string; error: string };
      /** The delivery manifest (`delivery.json`), when `deployment` is a deliverable. */
      manifest?: unknown;
    };

/** One public event of a project that someone outside hears about; its id is the event's. */
export interface Notice {
  /** `<namespace>/<name>#<sequence>`, the id of the event on `troupe.events`. */
  id: string;
  /** Unix ms. */
  occurredAt: number;
  data: NoticeData;
}

/** What the outbox needs to know of the project a notice is about. */
export interface ProjectInfo {
  namespace: string;
  name: string;
  client: string;
  generation: number;
  deliverables: Deliverable[];
  notify: NotifyTargets;
  git?: GitTarget;
}

/** The JSON body of a webhook: a notice with the project it is about. */
export interface WebhookPayload {
  id: string;
  type: NoticeType;
  /** RFC 3339. */
  occurredAt: string;
  namespace: string;
  project: string;
  client: string;
  generation: number;
  data: Omit<NoticeData, 'type'>;
}

/** Something the outbox must get done, retried until it is. Ids are deterministic: `<notice id>/<what>`. */
export type DeliveryJob =
  | {
      kind: 'webhook';
      id: string;
      namespace: string;
      url: string;
      /** The Secret whose key `secret` signs the body. */
      secretRef?: string;
      payload: WebhookPayload;
      /** The artefact inlined as `data.manifest` when the body is made. */
      manifest?: string;
    }
  | { kind: 'email'; id: string; from: string; to: string[]; subject: string; text: string; date: number }
  | {
      kind: 'git';
      id: string;
      project: ProjectInfo;
      target: GitTarget;
      artifacts: ArtifactRef[];
      /** The `project.delivered` webhooks that wait for the push, to carry its commit (or error). */
      then: Extract<DeliveryJob, { kind: 'webhook' }>[];
    };

/** Inputs of the outbox actor (one per project, keyed `<namespace>/<name>`). */
export type OutboxMessage =
  | { type: 'notice'; project: ProjectInfo; notice: Notice }
  /** A job's timer: its backoff ended, or its attempt took too long. */
  | { type: 'retry'; job: string }
  /** `pushed`: where a git job's commit went. */
  | { type: 'done'; job: string; attempt: number; pushed?: { branch: string; commit: string } }
  | { type: 'failed'; job: string; attempt: number; error: string; retriable: boolean };

export type OutboxEvent =
  | { type: 'queued'; job: DeliveryJob }
  | { type: 'dispatched'; job: string; attempt: number }
  | { type: 'attempt-failed'; job: string; error: string }
  | { type: 'finished'; job: string };

export interface OutboxState {
  /** Jobs not done yet, by id: what they are, which attempt runs, and how the last one failed. */
  jobs: Record<string, { job: DeliveryJob; attempt: number; error?: string }>;
}

/** A courier's order: one attempt of one job, reported back to the outbox `owner`. */
export interface CourierRun {
  type: 'run';
  owner: string;
  attempt: number;
  job: DeliveryJob;
}

/** One webhook POST. */
export interface WebhookRequest {
  url: string;
  eventId: string;
  eventType: NoticeType;
  body: string;
  /** Signs the body (HMAC-SHA256); unsigned without one. */
  secret?: string;
}

/** POSTs webhooks; throws a DeliveryError that says whether trying again may help. */
export interface WebhookClient {
  post(request: WebhookRequest): Promise<void>;
}

export interface Mail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  /** Unix ms, for the Date header. */
  date: number;
  /** The Message-ID without brackets; the same notice keeps the same one, so mail clients see repeats as one. */
  messageId: string;
}

/** Sends mail; throws a DeliveryError that says whether trying again may help. */
export interface Mailer {
  send(mail: Mail): Promise<void>;
}

/** One commit of files to a branch of a remote repository. */
export interface GitPush {
  url: string;
  /** Empty: the remote's default branch (its HEAD), or `main` in an empty repository. */
  branch: string;
  /** For http(s) remotes that ask for them. */
  credentials?: { username: string; password: string };
  files: { path: string; content: Uint8Array }[];
  message: string;
}

/** Commits and pushes; throws a DeliveryError that says whether trying again may help. */
export interface GitPusher {
  /** Resolves with the branch pushed to and the commit it points at afterwards (the old head when nothing changed). */
  push(push: GitPush): Promise<{ branch: string; commit: string }>;
}

/** The data of Secrets, by namespace and name; `undefined` when the Secret is unknown. Values are never logged. */
export interface SecretSource {
  get(namespace: string, name: string): Promise<Record<string, string> | undefined>;
}

/** How the outbox retries: capped exponential backoff with jitter, a bounded number of attempts. */
export interface RetryPolicy {
  /** The wait after the first failed attempt (default 1 s); it doubles per attempt. */
  baseDelayMs: number;
  /** The longest wait between attempts (default 5 min). */
  maxDelayMs: number;
  /** Attempts before a job is given up (default 12, about 40 min of trying). */
  maxAttempts: number;
  /**
   * An attempt with no answer after this long is tried again: its node may have died. Keep it
   * above the longest attempt (a webhook times out after 10 s, an SMTP server after 30 s, a git
   * command after 2 min) (default 5 min).
   */
  attemptTimeoutMs: number;
}

/** What the Company needs to deliver: the senders, where secrets come from, and how to retry. */
export interface DeliveryOptions {
  webhooks: WebhookClient;
  git: GitPusher;
  /** Without one, email notices fail (once each, reported to onError). */
  mailer?: Mailer;
  secrets: SecretSource;
  /** The From of notice emails (default `Troupe <troupe@troupe.dev>`). */
  mailFrom: string;
  retry: RetryPolicy;
  /** In [0, 1): the jitter of backoff waits (default Math.random). */
  random: () => number;
}

export const RETRY_POLICY_DEFAULTS = {
  baseDelayMs: 1_000,
  maxDelayMs: 300_000,
  maxAttempts: 12,
  attemptTimeoutMs: 300_000,
} as const satisfies RetryPolicy;

export const DELIVERY_DEFAULTS = {
  mailFrom: 'Troupe <troupe@troupe.dev>',
  retry: RETRY_POLICY_DEFAULTS,
  random: Math.random,
} as const satisfies Partial<DeliveryOptions>;

export type DeliveryChannel = 'webhook' | 'email' | 'git';

/** A delivery that did not happen; `target` is the URL (credentials removed) or the addresses. */
export class DeliveryError extends RuntimeError {
  override name = 'DeliveryError';

  constructor(
    readonly channel: DeliveryChannel,
    readonly target: string,
    message: string,
    options: { retriable: boolean; cause?: unknown },
  ) {
    super(RuntimeErrorCode.DeliveryFailed, `${channel} ${target}: ${message}`, options);
    this.detail = message;
  }

  /** The message without the channel and target in front. */
  readonly detail: string;
}

/** The URL without user and password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username === '' && parsed.password === '') return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    // Not a URL (e.g. scp-like `git@host:repo`), which has no password to hide.
    return url;
  }
}
