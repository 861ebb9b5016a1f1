/**
 * @troupe/runtime/testing: test support that benchmarks and other workspaces share with the
 * runtime's own tests — child programs killed as a crash would kill them, polling with a
 * deadline, the failover node and its actors, and the sample company's fixtures. Tests and
 * benchmarks only; production code never imports this.
 */
import { fileURLToPath } from 'node:url';

export { startChild, type ChildProgram } from './child-process.js';
export { eventually } from './eventually.js';
export { wrapTransport } from './wrapped-transport.js';
export { failoverActors, SINKS, type CounterMessage, type SinkMessage } from '../actors/failover-actors.js';
export { SIM_PRICES, samplePools, submitCommand } from '../domain/company-fixtures.js';

/**
 * The failover tests' runtime node, a program for `startChild`: argv[2] is the JSON of
 * `{ transport, store, prefix, partitions, groupId, nodeId }`; it prints `STARTED` once its
 * actor system runs, then `TURN <partition> <unix ms>` for every counter turn it takes.
 */
export const FAILOVER_NODE = fileURLToPath(new URL('../actors/failover-node.ts', import.meta.url));
