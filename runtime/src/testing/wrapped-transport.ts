import type { Transport } from '../transport/transport.js';

/** Test support: `transport` with some of its calls replaced, to record what a test makes or to inject a fault. */
export function wrapTransport(transport: Transport, replaced: Partial<Omit<Transport, 'kind'>>): Transport {
  return {
    kind: transport.kind,
    createTopic: (topic, partitions) => transport.createTopic(topic, partitions),
    partitionCount: (topic) => transport.partitionCount(topic),
    send: (records) => transport.send(records),
    subscribe: (options) => transport.subscribe(options),
    committedOffset: (groupId, topic, partition) => transport.committedOffset(groupId, topic, partition),
    endOffset: (topic, partition) => transport.endOffset(topic, partition),
    close: () => transport.close(),
    ...replaced,
  };
}
