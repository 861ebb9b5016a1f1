/**
 * From a ModelProvider resource to a provider the LlmClient can use: its client, chosen by
 * `spec.type`, and its price table. The API key comes from the Secret `apiKeySecretRef` names,
 * read by the caller; it is registered for redaction (security/redact.ts), so it never shows in
 * an error, a log or a project's status.
 */
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { registerSecret } from '../../security/redact.js';
import type { RegisteredProvider } from '../client.js';
import { PriceTable, type ModelPrice } from '../pricing.js';
import { AnthropicProvider } from './anthropic.js';
import { OllamaProvider } from './ollama.js';
import { OpenAiProvider } from './openai.js';
import type { ProviderType } from './provider.js';
import { SimulatedProvider, type SimulatedModelOptions } from './simulated.js';

/** ModelProvider.spec, as the LLM layer reads it. */
export interface ModelProviderSpec {
  type: ProviderType;
  baseURL?: string;
  pricing?: ModelPrice[];
  simulated?: Partial<SimulatedModelOptions>;
}

/**
 * @example
 * const openai = createProvider('openai', { type: 'openai', pricing }, { apiKey: secret });
 * const llm = new LlmClient({ providers: [openai, createProvider('sim', { type: 'simulated' })], budgets, ledger });
 */
export function createProvider(name: string, spec: ModelProviderSpec, secrets: { apiKey?: string } = {}): RegisteredProvider {
  const pricing = new PriceTable(spec.pricing ?? []);
  const { baseURL } = spec;
  const { apiKey } = secrets;
  registerSecret(apiKey);
  const needKey = (): string => {
    if (apiKey === undefined || apiKey === '') {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `ModelProvider ${name} of type ${spec.type} needs an API key (spec.apiKeySecretRef)`,
      );
    }
    return apiKey;
  };
  switch (spec.type) {
    case 'openai':
      return { provider: new OpenAiProvider({ name, apiKey: needKey(), baseURL }), pricing };
    case 'anthropic':
      return { provider: new AnthropicProvider({ name, apiKey: needKey(), baseURL }), pricing };
    case 'ollama':
      return { provider: new OllamaProvider({ name, apiKey, baseURL }), pricing };
    case 'simulated':
      return { provider: new SimulatedProvider({ name, apiKey, baseURL, ...spec.simulated }), pricing };
    default:
      return unknownType(name, spec.type);
  }
}

// Typed `never`, so a new ProviderType without a case fails to compile.
function unknownType(name: string, type: never): never {
  throw new RuntimeError(
    RuntimeErrorCode.InvalidOptions,
    `ModelProvider ${name}: spec.type ${JSON.stringify(type)} is not one of: openai, anthropic, ollama, simulated`,
  );
}
