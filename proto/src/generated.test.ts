import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, credentials, status, type handleUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { describe, it, expect } from 'vitest';
import {
  Command,
  Envelope,
  Event,
  HealthResponse,
  ProjectPhase,
  RuntimeServiceClient,
  RuntimeServiceService,
  ServingStatus,
  TaskState,
  WatchProjectResponse,
  BudgetAction,
  Deliverable,
  type HealthRequest,
  type RuntimeServiceServer,
} from './index.js';

const GENERATE_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'generate.mjs');
const NOW = 1_764_000_000_000;

describe('generated code', () => {
  it('is in sync with the .proto sources', { timeout: 60_000 }, () => {
    // Run from an unrelated cwd: the script must resolve its own paths.
    const result = spawnSync(process.execPath, [GENERATE_SCRIPT, '--check'], {
      cwd: '/',
      encoding: 'utf8',
    });
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
  });
});

describe('encode/decode', () => {
  const command = Command.fromPartial({
    id: 'submit/acme/shop/3',
    issuedAt: NOW,
    command: {
      $case: 'submitProject',
      value: {
        namespace: 'acme',
        name: 'shop',
        uid: '6f1c2c1e-0b7a-4a52-9a57-3d1f3f0e9b11',
        generation: 3,
        spec: {
          client: 'acme',
          brief: 'A web shop for handmade mugs.',
          workflow: 'software-delivery',
          deliverables: [Deliverable.REQUIREMENTS, Deliverable.CODE, Deliverable.TESTS],
          budget: { maxCostUsd: 12.5, maxTokens: 2_000_000, onExceeded: BudgetAction.FAIL },
          pools: { developer: 'developers', qa: 'testers' },
          approvals: ['architecture'],
          priority: 0,
          deadline: NOW + 86_400_000,
          suspend: false,
        },
      },
    },
  });

  it('round-trips a Command with its oneof, map, enums and optionals', () => {
    const decoded = Command.decode(Command.encode(command).finish());
    expect(decoded).toEqual(command);
    if (decoded.command?.$case !== 'submitProject') throw new Error(`got ${decoded.command?.$case}`);
    const spec = decoded.command.value.spec;
    expect(spec?.pools).toEqual({ developer: 'developers', qa: 'testers' });
    expect(spec?.budget?.onExceeded).toBe(BudgetAction.FAIL);
    // proto3 `optional`: an explicit 0 survives and differs from unset.
    expect(spec?.priority).toBe(0);
    const empty = Command.decode(Command.encode({ ...command, command: undefined }).finish());
    expect(empty.command).toBeUndefined();
  });

  it('round-trips an Envelope carrying an encoded Command', () => {
    const envelope = Envelope.fromPartial({
      id: 'cmd-1',
      target: { type: 'project', id: 'acme/shop' },
      type: 'troupe.v1.Command',
      payload: Buffer.from(Command.encode(command).finish()),
      trace: {
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        tracestate: 'vendor=1',
      },
      attempt: 2,
      causationId: 'cause-1',
      correlationId: 'corr-1',
      createdAt: NOW,
      replyTo: { type: 'operator', id: 'reconciler-0' },
    });

    const decoded = Envelope.decode(Envelope.encode(envelope).finish());

    expect(decoded).toEqual(envelope);
    expect(typeof decoded.createdAt).toBe('number');
    expect(decoded.replyTo).toEqual({ type: 'operator', id: 'reconciler-0' });
    expect(Command.decode(decoded.payload)).toEqual(command);
  });

  it('leaves reply_to unset for a tell', () => {
    const tell = Envelope.fromPartial({ id: 'evt-1', target: { type: 'project', id: 'acme/shop' } });
    expect(Envelope.decode(Envelope.encode(tell).finish()).replyTo).toBeUndefined();
  });
});

describe('RuntimeService over grpc-js', () => {
  const events: Event[] = [
    Event.fromPartial({
      id: 'e1',
      sequence: 1,
      occurredAt: NOW,
      event: {
        $case: 'projectPhaseChanged',
        value: { previous: ProjectPhase.PENDING, phase: ProjectPhase.PLANNING, reason: 'Accepted' },
      },
    }),
    Event.fromPartial({
      id: 'e2',
      sequence: 2,
      occurredAt: NOW + 1,
      event: {
        $case: 'taskStateChanged',
        value: {
          taskId: 't1',
          phase: 'requirements',
          state: TaskState.RUNNING,
          attempt: 1,
          progress: { tasksTotal: 4 },
        },
      },
    }),
    Event.fromPartial({
      id: 'e3',
      sequence: 3,
      occurredAt: NOW + 2,
      event: { $case: 'costRecorded', value: { usd: 0.0125, tokensIn: 1200, tokensOut: 800, llmCalls: 1 } },
    }),
  ];

  const unimplemented: handleUnaryCall<unknown, never> = (_call, callback) =>
    callback({ code: status.UNIMPLEMENTED, details: 'not in this test' });

  const implementation: RuntimeServiceServer = {
    submitProject: unimplemented,
    cancelProject: unimplemented,
    approve: unimplemented,
    getProject: unimplemented,
    listProjects: unimplemented,
    listPools: unimplemented,
    exportProject: (call) => call.emit('error', { code: status.UNIMPLEMENTED, details: 'not in this test' }),
    importProject: (_call, callback) => callback({ code: status.UNIMPLEMENTED, details: 'not in this test' }),
    health: (_call, callback) =>
      callback(null, {
        status: ServingStatus.SERVING,
        version: '0.1.0-test',
        components: [{ name: 'transport', status: ServingStatus.SERVING, message: '' }],
      }),
    watchProject: (call) => {
      const { namespace, name } = call.request;
      call.write({
        update: {
          $case: 'snapshot',
          value: {
            phase: ProjectPhase.PENDING,
            observedGeneration: 1,
            conditions: [],
            currentPhase: '',
            artifacts: [],
            lastSequence: 0,
          },
        },
      } satisfies WatchProjectResponse);
      for (const event of events) {
        call.write({ update: { $case: 'event', value: { ...event, namespace, project: name } } });
      }
      call.end();
    },
  };

  async function withServer(run: (client: RuntimeServiceClient) => Promise<void>): Promise<void> {
    const server = new Server();
    server.addService(RuntimeServiceService, implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, boundPort) =>
        error ? reject(error) : resolve(boundPort),
      ),
    );
    const client = new RuntimeServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      await run(client);
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    }
  }

  function health(client: RuntimeServiceClient, request: HealthRequest): Promise<HealthResponse> {
    return new Promise((resolve, reject) =>
      client.health(request, (error: ServiceError | null, response: HealthResponse) => (error ? reject(error) : resolve(response))),
    );
  }

  it('answers Health', async () => {
    await withServer(async (client) => {
      expect(await health(client, {})).toEqual({
        status: ServingStatus.SERVING,
        version: '0.1.0-test',
        components: [{ name: 'transport', status: ServingStatus.SERVING, message: '' }],
      });
    });
  });

  it('streams a snapshot then the events of WatchProject', async () => {
    await withServer(async (client) => {
      const received: WatchProjectResponse[] = [];
      const stream = client.watchProject({ namespace: 'acme', name: 'shop', afterSequence: 0 });
      // grpc-js streams iterate as `any`; the generated deserializer produced these.
      for await (const response of stream) received.push(response as WatchProjectResponse);

      expect(received.map((r) => r.update?.$case)).toEqual(['snapshot', 'event', 'event', 'event']);
      const streamed = received.flatMap((r) => (r.update?.$case === 'event' ? [r.update.value] : []));
      expect(streamed.map((e) => e.sequence)).toEqual([1, 2, 3]);
      expect(streamed.every((e) => e.namespace === 'acme' && e.project === 'shop')).toBe(true);
      expect(streamed[1]?.event).toEqual({
        $case: 'taskStateChanged',
        value: expect.objectContaining({
          taskId: 't1',
          state: TaskState.RUNNING,
          progress: expect.objectContaining({ tasksTotal: 4 }),
        }),
      });
      expect(streamed[2]?.event).toEqual({
        $case: 'costRecorded',
        value: expect.objectContaining({ usd: 0.0125, tokensIn: 1200, tokensOut: 800, llmCalls: 1 }),
      });
    });
  });

  it('reports UNIMPLEMENTED from a handler as a gRPC status', async () => {
    await withServer(async (client) => {
      const error = await new Promise<ServiceError | null>((resolve) =>
        client.getProject({ namespace: 'acme', name: 'shop' }, (e) => resolve(e)),
      );
      expect(error?.code).toBe(status.UNIMPLEMENTED);
    });
  });
});
