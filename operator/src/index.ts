/**
 * @troupe/operator: the reconcilers of Project, AgentPool, ModelProvider and Workflow on a small
 * controller runtime (informers, work queue, leader election, Events) over @kubernetes/client-node.
 * `startOperator` runs a replica; the process entry point is src/main.ts.
 */
export { startOperator, OPERATOR_DEFAULTS, type Operator, type OperatorOptions } from './operator.js';
export { OperatorError, OperatorErrorCode, KubeApiError, TerminalError } from './errors.js';

export { GrpcRuntimeClient, GRPC_RUNTIME_CLIENT_DEFAULTS, type GrpcRuntimeClientOptions } from './clients/runtime.grpc.js';
export type { RuntimeClient, ProjectStream, ProjectStreamHandlers } from './clients/runtime.js';
export type { RuntimePools, RuntimePoolChange } from './clients/pools.js';
export { KafkaPoolTopics, KAFKA_POOL_TOPICS_DEFAULTS, type KafkaPoolTopicsOptions } from './clients/topics.kafka.js';
export type { PoolTopics, TopicChange } from './clients/topics.js';

export {
  Projects,
  APPROVE_ANNOTATION,
  PROJECT_FINALIZER,
  type Project,
  type ProjectSpec,
  type ProjectStatus,
  type ProjectPhase,
} from './api/v1alpha1/project.types.js';
export { AgentPools, type AgentPool, type AgentPoolSpec, type AgentPoolStatus } from './api/v1alpha1/agentpool.types.js';
export {
  ModelProviders,
  type ModelProvider,
  type ModelProviderSpec,
  type ModelProviderStatus,
} from './api/v1alpha1/modelprovider.types.js';
export { Workflows, type Workflow, type WorkflowSpec, type WorkflowStatus, type WorkflowPhase } from './api/v1alpha1/workflow.types.js';
export { ConditionType, PoolReason, ProviderReason, WorkflowReason, ProjectReason } from './controllers/conditions.js';
export { desiredDeployment, AGENT_DEPLOYMENT_DEFAULTS, type AgentDeploymentSettings } from './controllers/agentpool.deployment.js';

export type { KubeObject, ObjectMeta, CoreEvent } from './kube/types.js';
export {
  KubeClient,
  KUBE_CLIENT_DEFAULTS,
  resourceType,
  type ResourceType,
  type KubeClientOptions,
  type ApiRequest,
} from './kube/client.js';
export { Manager, MANAGER_DEFAULTS, type ManagerOptions, type Runnable } from './kube/manager.js';
export type { ReconcileOutcome, ReconcileResult, Reconciler } from './kube/controller.js';
export type { LeadershipEnd } from './kube/leader-election.js';
export { jsonLogger, silentLogger, type Logger, type LogLevel } from './kube/log.js';

export { CrdValidator, type ValidationResult } from './schema/validator.js';
export {
  describeInvalid,
  fieldErrorText,
  invalidStatus,
  FieldErrorType,
  type FieldError,
  type InvalidStatus,
  type QualifiedKind,
} from './schema/field-error.js';
export type { KindInfo, PrinterColumn, ScaleSubresource, CustomResourceDefinition } from './schema/crd.types.js';

export { startEmbeddedApiServer, type EmbeddedApiServer, type EmbeddedApiServerOptions } from './embedded/embedded-api-server.js';
export { ResourceStore, RESOURCE_STORE_DEFAULTS, type ResourceStoreOptions, type Admission } from './embedded/resource-store.js';
export { ResourceServer, RESOURCE_SERVER_DEFAULTS, type ResourceServerOptions } from './embedded/resource-server.js';
export { writeKubeconfig, readKubeconfig, RUNTIME_EXTENSION, type Endpoints, type LoadedKubeconfig } from './embedded/kubeconfig.js';
export { KindCatalog, type CliKind } from './cli/kinds.js';
export { readManifests, refusals, applyManifest, type Manifest, type ApplyOutcome } from './cli/manifests.js';
