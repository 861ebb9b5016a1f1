/**
 * A runtime node in its own process for the failover tests. It prints one line per turn,
 * `TURN <partition> <unix ms>`, so the test can tell which partitions it owned and when another
 * node took them over after it was killed.
 *
 * argv[2]: JSON of a NodePlan.
 */
import { openStore, type StoreConfig } from '../store/open.js';
import { openTransport, type TransportConfig } from '../transport/open.js';
import { partitionFor } from '../transport/partitioner.js';
import { ActorSystem } from './actor-system.js';
import { failoverActors } from './failover-actors.js';

interface NodePlan {
  transport: TransportConfig;
  store: StoreConfig;
  prefix: string;
  partitions: number;
  groupId: string;
  nodeId: string;
}

const plan = JSON.parse(process.argv[2] ?? '{}') as NodePlan;
const transport = await openTransport(plan.transport);
const store = await openStore(plan.store);
const { counter, sink } = failoverActors(plan.prefix, (id) => console.log(`TURN ${partitionFor(id, plan.partitions)} ${Date.now()}`));
await ActorSystem.start({
  transport,
  store,
  actors: [counter, sink],
  partitions: plan.partitions,
  groupId: plan.groupId,
  nodeId: plan.nodeId,
  onError: (error) => console.error(error.message),
});
console.log('STARTED');
