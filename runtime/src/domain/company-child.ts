/**
 * The embedded company in a child process, for the restart test: it submits a project and
 * prints each task state change as `TASK <id> <state> <sequence>`, and `MID-PHASE` once implementation
 * tasks are running, where the test kills it.
 *
 * argv[2]: JSON of { dataDir, baseURL }
 */
import { TaskState } from '@troupe/proto';
import { startEmbeddedRuntime } from '../embedded.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { SIM_PRICES, samplePools, submitCommand } from './company-fixtures.js';

const { dataDir, baseURL } = JSON.parse(process.argv[2] ?? '{}') as { dataDir: string; baseURL: string };
const runtime = await startEmbeddedRuntime({
  dataDir,
  providers: [createProvider('simulated', { type: 'simulated', baseURL, pricing: SIM_PRICES })],
  pools: samplePools('acme'),
  taskCheckMs: 1_000,
});
let said = false;
await runtime.company.watch({ namespace: 'acme', project: 'restart' }, (event) => {
  if (event.event?.$case !== 'taskStateChanged') return;
  const task = event.event.value;
  console.log(`TASK ${task.taskId} ${task.state} ${event.sequence}`);
  const building = task.phase === 'implementation' && !task.taskId.endsWith('-plan') && task.state === TaskState.RUNNING;
  if (building && !said) {
    said = true;
    console.log('MID-PHASE');
  }
});
await runtime.company.submitProject('restart-1', submitCommand('acme', 'restart'));
