/**
 * The failover benchmark's baseline node: a raw kafkajs consumer-group member in its own
 * process, with the same session, heartbeat and rebalance timeouts as the runtime's nodes. It
 * speaks the runtime failover node's lines: `STARTED` once it has joined the group, then
 * `TURN <partition> <unix ms>` for every message it consumes.
 *
 * argv[2]: JSON of a KafkajsNodePlan.
 */
import { Kafka, logLevel } from 'kafkajs';

/** The member's broker, topic and group, and the runtime nodes' timeouts. */
export interface KafkajsNodePlan {
  brokers: string[];
  topic: string;
  groupId: string;
  nodeId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  heartbeatIntervalMs: number;
  maxWaitTimeMs: number;
}

const plan = JSON.parse(process.argv[2] ?? '{}') as KafkajsNodePlan;
const kafka = new Kafka({ clientId: plan.nodeId, brokers: plan.brokers, logLevel: logLevel.ERROR });
const consumer = kafka.consumer({
  groupId: plan.groupId,
  sessionTimeout: plan.sessionTimeoutMs,
  rebalanceTimeout: plan.rebalanceTimeoutMs,
  heartbeatInterval: plan.heartbeatIntervalMs,
  maxWaitTimeInMs: plan.maxWaitTimeMs,
});
let joined = false;
consumer.on(consumer.events.GROUP_JOIN, () => {
  if (!joined) console.log('STARTED');
  joined = true;
});
await consumer.connect();
await consumer.subscribe({ topic: plan.topic, fromBeginning: true });
await consumer.run({
  eachMessage: async ({ partition }) => {
    console.log(`TURN ${partition} ${Date.now()}`);
  },
});
