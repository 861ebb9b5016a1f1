/**
 * @troupe/runtime: the actor runtime and what runs on it. Composition roots choose the
 * Transport and Store with `openTransport` and `openStore`; everything else takes them as
 * interfaces.
 */
export { ActorSystem, ACTOR_SYSTEM_DEFAULTS, DEAD_LETTER_TOPIC, type ActorSystemOptions } from './actors/actor-system.js';
export { ActorClient, REPLY_TOPIC, type ActorClientOptions } from './actors/actor-client.js';
export { defineActor, actorTopic, jsonCodec, type ActorType, type ActorContext, type Codec, type TimerDue } from './actors/actor.js';
export { RETRY_DEFAULTS, type RetryPolicy } from './actors/supervision.js';
export { RuntimeError, ActorError, TransportError, RuntimeErrorCode } from './errors.js';
export { openTransport, type TransportConfig } from './transport/open.js';
export { openStore, type StoreConfig } from './store/open.js';
export { partitionFor } from './transport/partitioner.js';
export { openServices, type ServicesConfig } from './services/open.js';
export type { ClusterServices, RateLimiter, ResponseCache, PubSub, BucketLimit, TakeResult, Unsubscribe } from './services/services.js';
export type { Transport, ProducerRecord, ConsumedRecord, PartitionBatch, PartitionAssignment, SubscribeOptions, Subscription } from './transport/transport.js';
export type { Store, ActorRef, TurnWrite, ActorRecord, Timer, Fence, Snapshot, StoredEvent, OutboxMessage } from './store/store.js';
