/** Options are checked once, at construction, with errors that name the component and the key. */
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { GrpcRuntimeClient } from './clients/runtime.grpc.js';
import { KafkaPoolTopics } from './clients/topics.kafka.js';
import { AGENT_DEPLOYMENT_DEFAULTS } from './controllers/agentpool.deployment.js';
import { OperatorErrorCode } from './errors.js';
import { KubeClient } from './kube/client.js';
import { LeaderElector } from './kube/leader-election.js';
import { WorkQueue } from './kube/work-queue.js';
import { startOperator } from './operator.js';

function kubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:6443', skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return config;
}

describe('options', () => {
  it('refuses a renew deadline that would let two replicas lead at once', () => {
    const client = new KubeClient({ config: kubeConfig() });
    expect(
      () => new LeaderElector({ client, namespace: 'ns', name: 'lease', identity: 'a', leaseDurationMs: 5_000, renewDeadlineMs: 5_000 }),
    ).toThrow(
      expect.objectContaining({
        code: OperatorErrorCode.InvalidOptions,
        message: 'LeaderElector option renewDeadlineMs must be less than leaseDurationMs, or two replicas could lead at once, got 5000',
      }),
    );
    client.close();
  });

  it('names the key of every refused option', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => new GrpcRuntimeClient({ address: 'runtime' }), /^GrpcRuntimeClient option address must be host:port, got "runtime"$/],
      [() => new KafkaPoolTopics({ brokers: [] }), /^KafkaPoolTopics option brokers must list host:port entries/],
      [() => new KubeClient({ config: kubeConfig(), maxSockets: 0 }), /^KubeClient option maxSockets must be a positive integer, got 0$/],
      [() => new WorkQueue({ backoff: { initialMs: 100, maxMs: 10 } }), /^WorkQueue option backoff needs 0 < initialMs <= maxMs/],
      [
        () =>
          startOperator({
            kubeConfig: kubeConfig(),
            identity: 'a',
            runtime: new GrpcRuntimeClient({ address: '127.0.0.1:1' }),
            leaderElection: false,
            topicSizing: { partitionsPerReplica: 0, minPartitions: 4 },
          }),
        /^startOperator option topicSizing.partitionsPerReplica must be a positive integer, got 0$/,
      ],
      [
        () =>
          startOperator({
            kubeConfig: kubeConfig(),
            identity: 'a',
            runtime: new GrpcRuntimeClient({ address: '127.0.0.1:1' }),
            leaderElection: false,
            deployment: { ...AGENT_DEPLOYMENT_DEFAULTS, artifactsClaim: 'Shared Artifacts' },
          }),
        /^startOperator option deployment.artifactsClaim must be empty or a PersistentVolumeClaim name, got "Shared Artifacts"$/,
      ],
    ];
    for (const [construct, message] of cases) expect(construct).toThrow(message);
  });
});
