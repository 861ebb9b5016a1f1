/**
 * The operator under benchmark, alone in its process so that its memory is its own: one replica
 * reconciling one namespace, recording how long every reconcile took. Prints READY once it
 * leads; answers a REPORT line on stdin with one JSON line (reconcile durations, peak RSS, CPU
 * time since READY); stops on STOP.
 */
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { GrpcRuntimeClient, startOperator } from '@troupe/operator';

interface ChildOptions {
  kubeconfig: string;
  namespace: string;
  runtimeAddress: string;
  concurrency: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as ChildOptions;
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(options.kubeconfig);
const runtime = new GrpcRuntimeClient({ address: options.runtimeAddress, token: process.env.TROUPE_RUNTIME_TOKEN });
const durations: number[] = [];
const operator = startOperator({
  kubeConfig,
  identity: 'bench-operator',
  runtime,
  namespaces: [options.namespace],
  leaderElection: false,
  concurrency: options.concurrency,
  onReconciled: (outcome) => {
    if (outcome.controller === 'project') durations.push(outcome.durationMs);
  },
});

let peakRss = process.memoryUsage().rss;
let cpuAtReady = process.cpuUsage();
setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100).unref();
const leading = setInterval(() => {
  if (!operator.manager.isLeader) return;
  clearInterval(leading);
  cpuAtReady = process.cpuUsage();
  console.log('READY');
}, 20);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'REPORT') {
    const cpu = process.cpuUsage(cpuAtReady);
    console.log(JSON.stringify({ durations, peakRss, cpuMs: (cpu.user + cpu.system) / 1000 }));
  }
  if (line === 'STOP') {
    void operator.stop().then(() => {
      runtime.close();
      process.exit(0);
    });
  }
});
// Ends with its parent: stdin closes when the parent goes, even when it crashed.
process.stdin.on('end', () => process.exit(0));
