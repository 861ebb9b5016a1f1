/**
 * ModelProvider controller: Ready when the provider can be called — its API key Secret exists
 * and holds the key (openai, anthropic, or any type that names one), or it needs no key
 * (simulated, ollama). Secrets are watched, so creating the Secret later flips Ready. The key
 * itself is never read into a condition, an Event or a log line: the Secret cache keeps only
 * which keys hold a value.
 */
import { ModelProviders, type ModelProvider } from '../api/v1alpha1/modelprovider.types.js';
import type { Controller, Reconciler, ReconcileResult } from '../kube/controller.js';
import type { KindRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import type { Manager } from '../kube/manager.js';
import { Secrets } from '../kube/resources.js';
import { keyOf, splitKey, type ObjectKey, type Secret } from '../kube/types.js';
import { ConditionType, ProviderReason, findCondition, setCondition, type DesiredCondition } from './conditions.js';
import { updateStatus } from './status.js';

/**
 * Keeps a Secret's metadata and the names of its keys that hold a value, never the values: the
 * operator only needs to know the key is there.
 */
export function secretKeysOnly(secret: Secret): Secret {
  const { name, namespace, uid, resourceVersion } = secret.metadata;
  const data = Object.fromEntries(Object.entries(secret.data ?? {}).flatMap(([key, value]) => (value.length > 0 ? [[key, '']] : [])));
  return { metadata: { name, namespace, uid, resourceVersion }, type: secret.type, data };
}

/** Ready as the provider's credentials decide it. */
export function providerReadiness(provider: ModelProvider, secret: Secret | undefined): DesiredCondition {
  const ref = provider.spec.apiKeySecretRef;
  const observedGeneration = provider.metadata.generation;
  if (ref === undefined) {
    return {
      type: ConditionType.Ready,
      status: 'True',
      reason: ProviderReason.NoCredentialsNeeded,
      message: `${provider.spec.type} needs no API key`,
      observedGeneration,
    };
  }
  if (secret === undefined) {
    return {
      type: ConditionType.Ready,
      status: 'False',
      reason: ProviderReason.SecretNotFound,
      message: `Secret "${ref.name}" not found`,
      observedGeneration,
    };
  }
  if (!(ref.key in (secret.data ?? {}))) {
    return {
      type: ConditionType.Ready,
      status: 'False',
      reason: ProviderReason.SecretKeyMissing,
      message: `Secret "${ref.name}" has no value for key "${ref.key}"`,
      observedGeneration,
    };
  }
  return {
    type: ConditionType.Ready,
    status: 'True',
    reason: ProviderReason.CredentialsFound,
    message: `API key found in Secret "${ref.name}", key "${ref.key}"`,
    observedGeneration,
  };
}

export class ModelProviderReconciler implements Reconciler {
  private readonly providers: Informer<ModelProvider>;
  private readonly secrets: Informer<Secret>;
  private readonly events: KindRecorder;

  constructor(private readonly manager: Manager) {
    this.providers = manager.informer(ModelProviders);
    this.secrets = manager.informer(Secrets, { transform: secretKeysOnly });
    this.events = manager.eventsFor(ModelProviders);
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const provider = this.providers.get(namespace, name);
    if (provider === undefined || provider.metadata.deletionTimestamp !== undefined) return {};
    const ref = provider.spec.apiKeySecretRef;
    const secret = ref === undefined ? undefined : this.secrets.get(namespace, ref.name);
    const ready = providerReadiness(provider, secret);
    const previous = findCondition(provider.status?.conditions, ConditionType.Ready);
    const conditions = setCondition(provider.status?.conditions, ready, new Date(this.manager.options.clock.now()));
    await updateStatus(this.manager.client, ModelProviders, provider, {
      ...provider.status,
      observedGeneration: provider.metadata.generation,
      conditions,
    });
    if (previous?.status !== ready.status || previous.reason !== ready.reason) {
      if (ready.status === 'True') this.events.normal(provider, ready.reason, ready.message);
      else this.events.warning(provider, ready.reason, ready.message);
    }
    return {};
  }

  /** Reconciles providers on their own changes and on changes of the Secrets they name. */
  setupWithManager(manager: Manager): Controller<ModelProvider> {
    return manager
      .controller({ name: 'modelprovider', primary: this.providers, reconciler: this, recorder: this.events })
      .watches(this.secrets, (secret) =>
        this.providers
          .list(secret.metadata.namespace ?? '')
          .filter((provider) => provider.spec.apiKeySecretRef?.name === secret.metadata.name)
          .map(keyOf),
      );
  }
}
