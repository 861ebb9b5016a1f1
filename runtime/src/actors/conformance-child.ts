/**
 * A runtime node in a child process, for the conformance suite's crash tests: it runs the
 * ledger actor and says on stdout when it reached the point where the test kills it.
 *
 * argv[2]: JSON of a ChildPlan.
 */
import { openStore, type StoreConfig } from '../store/open.js';
import { openTransport, type TransportConfig } from '../transport/open.js';
import { ActorSystem } from './actor-system.js';
import { ledgerActor, type LedgerState } from './conformance-actors.js';

interface ChildPlan {
  transport: TransportConfig;
  store: StoreConfig;
  groupId: string;
  type: string;
  partitions: number;
  /** Block forever inside the turn that adds this number, after saying MID-TURN. */
  blockAt?: number;
  /** Say SCHEDULED once this actor has durably scheduled its reminder. */
  waitForScheduled?: string;
  /** Say HOLDING-SEND and never finish a send that carries a message to this actor. */
  holdSendsTo?: string;
}

const plan = JSON.parse(process.argv[2] ?? '{}') as ChildPlan;
const transport = await openTransport(plan.transport);
const send = transport.send.bind(transport);
// Models a node dying after a turn committed and before its outbox reached the log.
transport.send = async (records) => {
  if (records.some((record) => record.key === plan.holdSendsTo)) {
    console.log('HOLDING-SEND');
    await new Promise(() => {});
  }
  return send(records);
};
const store = await openStore(plan.store);
const ledger = ledgerActor(plan.type, {
  hooks: {
    async beforeAdd(n) {
      if (n !== plan.blockAt) return;
      console.log('MID-TURN');
      await new Promise(() => {});
    },
  },
});
const system = await ActorSystem.start({
  transport,
  store,
  actors: [ledger],
  partitions: plan.partitions,
  groupId: plan.groupId,
  nodeId: `child-${process.pid}`,
});
console.log('STARTED');
if (plan.waitForScheduled !== undefined) {
  for (;;) {
    const state = (await system.ask(ledger, plan.waitForScheduled, { type: 'get' })) as LedgerState;
    if (state.scheduled) break;
  }
  console.log('SCHEDULED');
}
